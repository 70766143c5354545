"""RecBole pre-split benchmark files, whose users' sequences must be rebuilt from the rows."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.data.lines import LoadReport
from llmrank.data.loaders.recbole import load_recbole
from llmrank.data.splits import LeaveOneOut
from llmrank.errors import DataError, MalformedLineError

from ._files import write

SEQS = {
    "1": [f"i{k}" for k in (1, 2, 3, 4, 5, 6, 7, 8)],
    "2": [f"i{k}" for k in (3, 1, 9, 2, 5)],
    "3": [f"i{k}" for k in (4, 4, 7)],  # a repeated item
}


def _write_presplit(folder, name, *, augment: bool, maxlen: int):
    """Benchmark files the way UniSRec writes them: train rows longest target first, every
    history truncated to the last ``maxlen`` items."""
    head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    train, valid, test = [head], [head], [head]
    for uid, seq in SEQS.items():
        tr = seq[:-2]
        if augment:
            for k in range(1, len(tr)):
                train.append(f"{uid}\t{' '.join(tr[:-k][-maxlen:])}\t{tr[-k]}\n")
        else:
            train.append(f"{uid}\t{' '.join(tr[:-1][-maxlen:])}\t{tr[-1]}\n")
        valid.append(f"{uid}\t{' '.join(tr[-maxlen:])}\t{seq[-2]}\n")
        test.append(f"{uid}\t{' '.join(seq[:-1][-maxlen:])}\t{seq[-1]}\n")
    for stage, rows in (("train", train), ("valid", valid), ("test", test)):
        write(folder / f"{name}.{stage}.inter", "".join(rows))
    write(folder / f"{name}.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n"
          "i1\tThe First One\t1999\tDrama Comedy\ni2\tSecond\t2001\tSci-Fi\n")


@pytest.mark.parametrize("maxlen", [3, 50])
def test_presplit_histories_reproduce_sequences(tmp_path, maxlen):
    folder = tmp_path / "bench"
    _write_presplit(folder, "bench", augment=True, maxlen=maxlen)
    report = LoadReport()
    ds = load_recbole(folder, report=report)
    assert report.skipped == 0
    for uid, seq in SEQS.items():
        assert ds.history(uid) == seq
    split = ds.split
    assert split is not None and split.names() == ["train", "valid", "test"]
    hists = ds.histories()
    for u, history, target in split.examples("test", hists):
        seq = SEQS[ds.user_ids[u]]
        assert [ds.item_ids[c] for c in history] == seq[:-1] and ds.item_ids[target] == seq[-1]
    rows = sorted((ds.user_ids[u], len(h), ds.item_ids[t]) for u, h, t in split.examples("train", hists))
    assert len(rows) == sum(len(s) - 3 for s in SEQS.values())
    assert split.is_leave_one_out(hists)
    loo = LeaveOneOut.from_predefined(ds)
    u2 = ds.user_code("2")
    assert ds.item_ids[loo.target(u2, "test")] == "i5" and ds.item_ids[loo.target(u2, "valid")] == "i2"
    assert ds.items["i1"].title == "The First One" and ds.items["i1"].genres == ("Drama", "Comedy")
    assert ds.items["i1"].year == 1999


def test_presplit_without_augmentation(tmp_path):
    _write_presplit(tmp_path, "plain", augment=False, maxlen=50)
    ds = load_recbole(tmp_path / "plain.train.inter")
    for uid, seq in SEQS.items():
        assert ds.history(uid) == seq


def test_presplit_files_without_a_valid_row_are_an_error(tmp_path):
    for stage in ("train", "valid", "test"):
        write(tmp_path / f"x.{stage}.inter", "user_id:token\titem_id_list:token_seq\titem_id:token\n\t\ti1\n")
    with pytest.raises(DataError, match=r"x.train.inter.*no valid interactions \(every data line was malformed: 3 skipped\)"):
        load_recbole(tmp_path)


def test_inconsistent_presplit_row_is_reported(tmp_path):
    _write_presplit(tmp_path, "bad", augment=False, maxlen=50)
    with (tmp_path / "bad.test.inter").open("a") as fh:
        fh.write("1\ti9 i9\ti2\n")
    report = LoadReport()
    load_recbole(tmp_path, report=report)
    assert report.skipped == 1 and report.problems[0].startswith(f"{tmp_path / 'bad.test.inter'}:5:")
    with pytest.raises(MalformedLineError, match="does not continue"):
        load_recbole(tmp_path, on_error="raise")


def test_stray_train_row_is_reported_and_test_only_user_kept(tmp_path):
    _write_presplit(tmp_path, "x", augment=True, maxlen=50)
    train = tmp_path / "x.train.inter"
    with train.open("a") as fh:
        fh.write("1\ti7 i7\ti1\n")  # continues nothing the user's rows rebuild
    with (tmp_path / "x.test.inter").open("a") as fh:
        fh.write("9\ti1 i2\ti3\n")  # a user with a test row only
    report = LoadReport()
    ds = load_recbole(tmp_path, report=report)
    n_lines = len(train.read_text().splitlines())
    assert report.skipped == 1 and report.problems[0].startswith(f"{train}:{n_lines}: history does not continue")
    assert ds.history("1") == SEQS["1"] and ds.history("9") == ["i1", "i2", "i3"]
    split = ds.split
    assert split is not None
    examples = {ds.user_ids[u]: ([ds.item_ids[c] for c in h], ds.item_ids[t])
                for u, h, t in split.examples("test", ds.histories())}
    assert examples["9"] == (["i1", "i2"], "i3")



def test_presplit_false_uses_full_inter(tmp_path):
    _write_presplit(tmp_path, "b", augment=False, maxlen=50)
    write(tmp_path / "b.inter", "user_id:token\titem_id:token\ttimestamp:float\nz\ti1\t5\n")
    assert load_recbole(tmp_path, presplit=False).user_ids == ["z"]
    assert np.array_equal(np.sort(load_recbole(tmp_path).interactions.timestamp)[:2], [0, 0])
