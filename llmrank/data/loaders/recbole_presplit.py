"""RecBole's pre-split benchmark files (``<name>.train/.valid/.test.inter``, whose
``item_id_list:token_seq`` column holds each row's history) as a Dataset.

Pre-split files carry no timestamps; each user's full sequence is rebuilt from the rows
(they may be truncated windows, and UniSRec-style files list a user's training rows longest
first), and the item's position in it becomes its timestamp. The rows themselves are kept
as ``Dataset.split`` because published benchmark numbers were computed on exactly them."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from llmrank.data.columns import EventColumns
from llmrank.data.dataset import Dataset
from llmrank.data.lines import ErrorPolicy, LoadReport, require_events
from llmrank.data.loaders.recbole_files import AtomicFiles, iter_rows
from llmrank.data.presplit import PredefinedSplit
from llmrank.errors import MalformedLineError
from llmrank.records import Item, User


@dataclass
class _Row:
    history: tuple[str, ...]
    target: str
    where: str  # file:line, for messages


def load_presplit(files: AtomicFiles, names: Mapping[str, str], name: str, items: list[Item],
                  users: list[User], seq_sep: str, on_error: ErrorPolicy, report: LoadReport) -> Dataset:
    """Every user's sequence rebuilt from the stage files' rows (positions as timestamps),
    with each row's target position kept as ``ds.split``."""
    skipped_before = report.skipped
    rows: dict[str, dict[str, list[_Row]]] = {stage: defaultdict(list) for stage in files.stages}
    user_order: dict[str, None] = {}
    for stage, path in files.stages.items():
        for line_no, row, _ in iter_rows(path, report, on_error):
            uid, target = row.get(names["user"], "").strip(), row.get(names["item"], "").strip()
            if names["item_list"] not in row or not uid or not target:
                report.problem(MalformedLineError(str(path), line_no, f"needs non-empty {names['user']!r}, "
                                                  f"{names['item_list']!r} and {names['item']!r}"), on_error)
                continue
            history = tuple(t for t in row[names["item_list"]].split(seq_sep) if t)
            rows[stage][uid].append(_Row(history, target, f"{path}:{line_no}"))
            user_order.setdefault(uid)
    maxlen = max((len(r.history) for per_user in rows.values() for rs in per_user.values() for r in rs), default=0)
    events = EventColumns()
    positions: dict[str, list[tuple[str, int]]] = {stage: [] for stage in files.stages}
    for uid in user_order:
        seq = _rebuild(uid, rows, maxlen, positions, on_error, report)
        for pos, iid in enumerate(seq):
            events.append(uid, iid, pos, None)
    require_events(len(events), ", ".join(map(str, files.stages.values())), report,
                   skipped_before=skipped_before)
    ds = Dataset.from_arrays(name, items, users, *events.arrays())
    stages = {
        stage: (np.asarray([ds.user_code(u) for u, _ in pairs], np.int32),
                np.asarray([p for _, p in pairs], np.int32))
        for stage, pairs in positions.items()
    }
    ds.split = PredefinedSplit(stages)
    return ds


def _rebuild(uid: str, rows: Mapping[str, Mapping[str, list[_Row]]], maxlen: int,
             positions: dict[str, list[tuple[str, int]]], on_error: ErrorPolicy,
             report: LoadReport) -> list[str]:
    """One user's sequence from their rows; records each row's target position."""
    train = list(rows["train"].get(uid, [])) if "train" in rows else []
    seq = _chain_train(uid, train, maxlen, positions["train"], on_error, report) if train else []
    for stage in ("valid", "test"):
        for r in rows[stage].get(uid, []) if stage in rows else []:
            _place_eval_row(uid, r, seq, positions[stage], on_error, report)
    return seq


def _chain_train(uid: str, train: list[_Row], maxlen: int, placed: list[tuple[str, int]],
                 on_error: ErrorPolicy, report: LoadReport) -> list[str]:
    """Train rows (one per target, in any order) chained into a sequence: the row with the
    shortest history starts it, then the row whose history is the sequence's last ``maxlen``
    items (histories are truncated to that) adds its target, and so on. Rows left over
    continue nothing and are reported."""
    start = min(range(len(train)), key=lambda k: len(train[k].history))
    first = train.pop(start)
    seq = [*first.history, first.target]
    placed.append((uid, len(first.history)))
    pool: dict[tuple[str, ...], deque[_Row]] = defaultdict(deque)
    for r in train:
        pool[r.history].append(r)
    while True:
        key = tuple(seq[-maxlen:]) if maxlen else ()
        if not pool.get(key):
            break
        r = pool[key].popleft()
        placed.append((uid, len(seq)))
        seq.append(r.target)
    for left in pool.values():
        for r in left:
            _inconsistent(r, report, on_error)
    return seq


def _place_eval_row(uid: str, r: _Row, seq: list[str], placed: list[tuple[str, int]],
                    on_error: ErrorPolicy, report: LoadReport) -> None:
    """A valid or test row appends its target when its history is the tail of ``seq`` (or
    empty), starts ``seq`` when the user has no earlier rows, and is reported otherwise."""
    h = list(r.history)
    if not seq:
        seq.extend([*h, r.target])
        placed.append((uid, len(h)))
    elif not h or seq[-len(h):] == h:
        placed.append((uid, len(seq)))
        seq.append(r.target)
    else:
        _inconsistent(r, report, on_error)


def _inconsistent(row: _Row, report: LoadReport, on_error: ErrorPolicy) -> None:
    path, _, line = row.where.rpartition(":")
    report.problem(MalformedLineError(path, int(line), "history does not continue the user's sequence "
                                      "rebuilt from the earlier rows"), on_error)

