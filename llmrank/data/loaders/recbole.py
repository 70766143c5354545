"""RecBole atomic files: ``<name>.inter``, ``<name>.item``, ``<name>.user`` with typed headers
(``user_id:token	item_id:token	rating:float	timestamp:float``; types token, token_seq,
float, float_seq), and the pre-split benchmark files ``<name>.train/.valid/.test.inter``
whose ``item_id_list:token_seq`` column holds each row's history.

Pre-split files carry no timestamps; each user's full sequence is rebuilt from the rows
(they may be truncated windows, and UniSRec-style files list a user's training rows longest
first), and the item's position in it becomes its timestamp. The rows themselves are kept
as ``Dataset.split`` because published benchmark numbers were computed on exactly them."""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmrank.data.columns import EventColumns, read_clean_table
from llmrank.data.dataset import Dataset
from llmrank.data.lines import ErrorPolicy, LoadReport, iter_lines, parse_float
from llmrank.data.presplit import STAGES, PredefinedSplit
from llmrank.errors import DataError, MalformedLineError
from llmrank.records import Item, User

log = logging.getLogger(__name__)

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
# RecBole's own field names for item text vary by dataset; the first present one is used
ITEM_FIELDS: dict[str, tuple[str, ...]] = {
    "title": ("title", "movie_title", "name", "item_name", "book_title", "track_name"),
    "year": ("release_year", "year", "publish_year", "publication_year"),
    "genres": ("genre", "genres", "class", "categories", "category"),
    "tags": ("tags", "tag"),
    "description": ("description", "desc", "text", "plot", "overview", "summary"),
}
INTER_FIELDS = {"user": "user_id", "item": "item_id", "rating": "rating",
                "timestamp": "timestamp", "item_list": "item_id_list"}


@dataclass(frozen=True)
class Field:
    name: str
    type: str


@dataclass
class AtomicFiles:
    name: str
    inter: Path | None = None
    item: Path | None = None
    user: Path | None = None
    text: Path | None = None
    stages: dict[str, Path] = field(default_factory=dict)


def find_atomic_files(path: Path) -> AtomicFiles:
    """The atomic files of one dataset, from its folder or any of its ``.inter`` files."""
    if path.is_file():
        folder, stem = path.parent, _stem(path.name)
    elif path.is_dir():
        folder = path
        stems = sorted({_stem(p.name) for p in path.glob("*.inter")})
        if path.name in stems:
            stem = path.name
        elif len(stems) == 1:
            stem = stems[0]
        else:
            raise DataError(f"{path}: expected the .inter files of one dataset, found stems {stems or 'none'}")
    else:
        raise DataError(f"RecBole files not found: {path}")
    files = AtomicFiles(stem)
    for kind in ("inter", "item", "user", "text"):
        candidate = folder / f"{stem}.{kind}"
        if candidate.is_file():
            setattr(files, kind, candidate)
    for stage in STAGES:
        candidate = folder / f"{stem}.{stage}.inter"
        if candidate.is_file():
            files.stages[stage] = candidate
    if files.inter is None and not files.stages:
        raise DataError(f"{folder}: no {stem}.inter or {stem}.train.inter")
    return files


def _stem(filename: str) -> str:
    stem = filename.removesuffix(".inter")
    for stage in STAGES:
        stem = stem.removesuffix(f".{stage}")
    return stem


def parse_header(text: str, path: str) -> list[Field]:
    fields: list[Field] = []
    for raw in text.split("\t"):
        name, sep, kind = raw.strip().rpartition(":")
        if not sep or not name or kind not in FIELD_TYPES:
            raise MalformedLineError(path, 1, f"header field {raw!r} is not 'name:type' with type in {FIELD_TYPES}")
        fields.append(Field(name, kind))
    return fields


def iter_rows(path: Path, report: LoadReport, on_error: ErrorPolicy) -> Iterator[tuple[int, dict[str, str], list[Field]]]:
    """(line_no, {field name: raw value}, header) for each well-formed row."""
    header: list[Field] | None = None
    for line_no, text in iter_lines(path, report=report, on_error=on_error):
        if header is None:
            header = parse_header(text, str(path))  # a bad header is fatal: nothing else parses
            report.lines_read -= 1
            continue
        values = text.split("\t")
        if len(values) != len(header):
            report.problem(MalformedLineError(str(path), line_no, f"expected {len(header)} tab-separated "
                                              f"fields, got {len(values)}"), on_error)
            continue
        yield line_no, {f.name: v for f, v in zip(header, values, strict=True)}, header


def load_recbole(
    path: str | Path, *, name: str | None = None, on_error: ErrorPolicy = "skip",
    report: LoadReport | None = None, presplit: bool | None = None,
    mapping: Mapping[str, str] | None = None, seq_sep: str = " ",
) -> Dataset:
    """Load a RecBole dataset. Pre-split benchmark files are used when present (unless
    ``presplit=False``); ``mapping`` renames fields (keys: user, item, rating, timestamp,
    item_list, title, year, genres, tags, description)."""
    report = report if report is not None else LoadReport()
    files = find_atomic_files(Path(path))
    names = {**INTER_FIELDS, **(mapping or {})}
    items = _read_items(files, names, seq_sep, on_error, report)
    users = _read_users(files, names, on_error, report) if files.user else []
    use_split = bool(files.stages) if presplit is None else presplit
    if use_split and not files.stages:
        raise DataError(f"{files.name}: no pre-split .train/.valid/.test.inter files")
    if use_split:
        if files.inter is not None:
            log.info("%s: using the pre-split benchmark files, not %s", files.name, files.inter.name)
        return _load_presplit(files, names, name or files.name, items, users, seq_sep, on_error, report)
    if files.inter is None:
        raise DataError(f"{files.name}: no {files.name}.inter (only pre-split files)")
    events = _read_inter(files.inter, names, on_error, report)
    return Dataset.from_arrays(name or files.name, items, users, *events.arrays())


# ---- interactions ----------------------------------------------------------------------------

def _read_inter(path: Path, names: Mapping[str, str], on_error: ErrorPolicy, report: LoadReport) -> EventColumns:
    header = _header(path)
    by_name = {f.name: i for i, f in enumerate(header)}
    for key in ("user", "item"):
        if names[key] not in by_name:
            raise DataError(f"{path}: no {names[key]!r} field in the header (fields: {list(by_name)})")
    r_idx, t_idx = by_name.get(names["rating"]), by_name.get(names["timestamp"])
    if all(f.type in ("token", "float") for f in header):
        types = {by_name[names["user"]]: "string", by_name[names["item"]]: "string"}
        if r_idx is not None:
            types[r_idx] = "float64"
        if t_idx is not None:
            types[t_idx] = "float64"
        fast = read_clean_table(path, sep="\t", n_fields=len(header), header=True, encoding="utf-8",
                                types=types, report=report)
        if fast is not None:
            n = len(fast[0])
            ts = np.asarray(fast[t_idx]).astype(np.int64) if t_idx is not None else np.zeros(n, np.int64)
            rt = np.asarray(fast[r_idx]).astype(np.float32) if r_idx is not None else np.full(n, np.nan, np.float32)
            return EventColumns(fast[by_name[names["user"]]], fast[by_name[names["item"]]], ts, rt)
    events = EventColumns()
    for line_no, row, _ in iter_rows(path, report, on_error):
        try:
            uid, iid = row[names["user"]].strip(), row[names["item"]].strip()
            if not uid or not iid:
                raise MalformedLineError(str(path), line_no, "empty user or item id")
            rating = parse_float(row[names["rating"]], what="rating", path=str(path), line_no=line_no) \
                if r_idx is not None else None
            when = int(parse_float(row[names["timestamp"]], what="timestamp", path=str(path), line_no=line_no)) \
                if t_idx is not None else 0
        except MalformedLineError as err:
            report.problem(err, on_error)
            continue
        events.append(uid, iid, when, rating)
    return events


def _header(path: Path) -> list[Field]:
    for _, text in iter_lines(path, report=LoadReport(), on_error="raise"):
        return parse_header(text, str(path))
    raise DataError(f"file is empty: {path}")


@dataclass
class _Row:
    history: tuple[str, ...]
    target: str
    where: str  # file:line, for messages


def _load_presplit(files: AtomicFiles, names: Mapping[str, str], name: str, items: list[Item],
                   users: list[User], seq_sep: str, on_error: ErrorPolicy, report: LoadReport) -> Dataset:
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


# ---- items and users -------------------------------------------------------------------------

def _read_items(files: AtomicFiles, names: Mapping[str, str], seq_sep: str, on_error: ErrorPolicy,
                report: LoadReport) -> list[Item]:
    fields: dict[str, dict[str, tuple[str, str]]] = {}  # item id -> field -> (type, raw)
    seen_lines: dict[str, str] = {}
    for path in (files.item, files.text):
        if path is None:
            continue
        local: set[str] = set()
        for line_no, row, header in iter_rows(path, report, on_error):
            iid = row.get(names["item"], "").strip()
            if not iid:
                report.problem(MalformedLineError(str(path), line_no, f"empty {names['item']!r}"), on_error)
                continue
            if iid in local:
                report.problem(MalformedLineError(str(path), line_no, f"duplicate id {iid!r} (first one, "
                                                  f"{seen_lines[iid]}, kept)"), on_error)
                continue
            local.add(iid)
            seen_lines.setdefault(iid, f"line {line_no}")
            slot = fields.setdefault(iid, {})
            for f in header:
                if f.name != names["item"]:
                    slot.setdefault(f.name, (f.type, row[f.name]))
    return [_item(iid, values, names, seq_sep) for iid, values in fields.items()]


def _pick(values: Mapping[str, tuple[str, str]], names: Mapping[str, str], key: str) -> str | None:
    if key in names:
        return names[key] if names[key] in values else None
    return next((c for c in ITEM_FIELDS[key] if c in values), None)


def _item(iid: str, values: Mapping[str, tuple[str, str]], names: Mapping[str, str], seq_sep: str) -> Item:
    used: set[str] = set()
    text: dict[str, str] = {}
    lists: dict[str, tuple[str, ...]] = {}
    for key in ITEM_FIELDS:
        col = _pick(values, names, key)
        if col is None:
            continue
        used.add(col)
        kind, raw = values[col]
        if key in ("genres", "tags"):
            lists[key] = tuple(t for t in raw.split(seq_sep) if t.strip()) if kind.endswith("_seq") else \
                tuple(t.strip() for t in raw.split("|") if t.strip())
        else:
            text[key] = " ".join(raw.split(seq_sep)).strip() if kind.endswith("_seq") else raw.strip()
    year = None
    if text.get("year"):
        try:
            year = int(float(text["year"]))
        except ValueError:
            year = None
    attrs = {k: " ".join(v.split(seq_sep)).strip() for k, (kind, v) in values.items()
             if k not in used and v.strip()}
    return Item(iid, text.get("title", ""), year, lists.get("genres", ()), lists.get("tags", ()),
                text.get("description", ""), attrs)


def _read_users(files: AtomicFiles, names: Mapping[str, str], on_error: ErrorPolicy,
                report: LoadReport) -> list[User]:
    assert files.user is not None
    users: dict[str, User] = {}
    for line_no, row, _ in iter_rows(files.user, report, on_error):
        uid = row.get(names["user"], "").strip()
        if not uid:
            report.problem(MalformedLineError(str(files.user), line_no, f"empty {names['user']!r}"), on_error)
            continue
        if uid in users:
            report.problem(MalformedLineError(str(files.user), line_no, f"duplicate id {uid!r} (first one kept)"), on_error)
            continue
        users[uid] = User(uid, {k: v.strip() for k, v in row.items() if k != names["user"] and v.strip()})
    return list(users.values())

