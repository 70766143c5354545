"""Leave-one-out splits and candidate lists: deterministic, and negatives never seen."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.data.candidates import random_candidates, sample_negatives, top_n_candidates, user_rng
from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut, kcore, min_rating
from llmrank.errors import DataError
from llmrank.records import Item


def _tiny() -> Dataset:
    events = [("a", "i1", 3, 5.0), ("a", "i2", 1, 2.0), ("a", "i3", 2, 4.0), ("a", "i4", 2, 1.0),
              ("b", "i1", 1, None), ("b", "i2", 2, 3.0), ("c", "i3", 1, 4.0)]
    return Dataset.from_records("tiny", [Item("i0", "Unused")], [], events)


def test_leave_one_out_by_time_ties_by_file_order():
    ds = _tiny()
    split = LeaveOneOut.from_dataset(ds)
    a = ds.user_code("a")
    assert ds.history("a") == ["i2", "i3", "i4", "i1"]
    assert [ds.item_ids[c] for c in split.history(a, "valid")] == ["i2", "i3"]
    assert ds.item_ids[split.target(a, "valid")] == "i4" and ds.item_ids[split.target(a, "test")] == "i1"
    assert [ds.item_ids[c] for c in split.history(a, "test")] == ["i2", "i3", "i4"]
    assert split.eval_users().tolist() == [a]  # b and c are too short
    with pytest.raises(DataError, match="no predefined split"):
        LeaveOneOut.from_predefined(ds)


def test_min_rating_keeps_unrated_and_catalog():
    ds = min_rating(_tiny(), 3.0)
    assert len(ds.interactions) == 5 and ds.n_items == 5
    assert kcore(_tiny(), 2).n_users == 2


def test_a_kcore_that_removes_everything_is_a_data_error():
    """An empty dataset would fail later, far from the cause (an index of nothing, no
    evaluation users): say which k emptied which dataset."""
    with pytest.raises(DataError, match=r"10-core of 'tiny' leaves no interactions.*largest"):
        kcore(_tiny(), 10)


def test_ml_small_split_sizes(ml_small):
    split = LeaveOneOut.from_dataset(kcore(ml_small, 5))
    assert len(split.eval_users()) == 610


@pytest.mark.parametrize("seed", [0, 13])
def test_random_candidates_deterministic_and_valid(ml100k, seed):
    split = LeaveOneOut.from_dataset(ml100k)
    for u in split.eval_users()[:50]:
        seen = split.seen(u, "test")
        target = split.target(u, "test")
        c1 = random_candidates(ml100k.n_items, target, seen, seed=seed, user=int(u))
        c2 = random_candidates(ml100k.n_items, target, seen, seed=seed, user=int(u))
        assert np.array_equal(c1, c2) and len(c1) == 20 and len(set(c1.tolist())) == 20
        negatives = [c for c in c1.tolist() if c != target]
        assert target in c1.tolist() and len(negatives) == 19
        assert not set(negatives) & set(seen.tolist())


def test_candidates_depend_on_seed_and_user_not_on_order():
    seen = np.arange(10)
    a = random_candidates(1000, 500, seen, seed=1, user=3)
    assert not np.array_equal(a, random_candidates(1000, 500, seen, seed=2, user=3))
    assert not np.array_equal(a, random_candidates(1000, 500, seen, seed=1, user=4))
    random_candidates(1000, 7, seen, seed=1, user=9)  # another user in between changes nothing
    assert np.array_equal(a, random_candidates(1000, 500, seen, seed=1, user=3))


def test_negatives_when_most_of_the_catalog_is_excluded():
    exclude = np.arange(95)
    neg = sample_negatives(100, exclude, 5, user_rng(0, 0))
    assert sorted(neg.tolist()) == [95, 96, 97, 98, 99]
    with pytest.raises(ValueError, match="only 5 items left"):
        sample_negatives(100, exclude, 6, user_rng(0, 0))


def test_top_n_candidates_skips_seen_and_duplicates():
    ranked = np.array([5, 3, 5, 9, 1, 2, 8])
    assert top_n_candidates(ranked, np.array([3, 1]), 3).tolist() == [5, 9, 2]
    assert top_n_candidates(ranked, np.array([]), 50).tolist() == [5, 3, 9, 1, 2, 8]


def _shipped(rows_for: tuple[str, ...]) -> Dataset:
    """u1 watched abcde, u3 abc, u2 ef; valid/test rows (last two items) for ``rows_for``."""
    from llmrank.data.presplit import PredefinedSplit

    seqs = {"u1": "abcde", "u3": "abc", "u2": "ef"}
    events = [(u, i, t, None) for u, seq in seqs.items() for t, i in enumerate(seq)]
    ds = Dataset.from_records("shipped", [Item(i, i) for i in "abcdef"], [], events)
    users = np.array([ds.user_code(u) for u in rows_for], np.int32)
    lengths = np.array([len(seqs[u]) for u in rows_for], np.int32)
    ds.split = PredefinedSplit({"train": (users[:0], lengths[:0]), "valid": (users, lengths - 2),
                                "test": (users, lengths - 1)})
    return ds


def test_from_predefined_evaluates_exactly_the_shipped_rows():
    """u2 (two items) has rows and u3 (three) has none: the shipped split evaluates u1 and
    u2; from_dataset would evaluate u1 and u3. Before, from_predefined returned the latter."""
    ds = _shipped(("u1", "u2"))
    split = LeaveOneOut.from_predefined(ds)
    code, ids = ds.user_code, ds.item_ids
    assert sorted(ds.user_ids[u] for u in split.eval_users()) == ["u1", "u2"]
    u2 = code("u2")
    assert ids[split.target(u2, "valid")] == "e" and ids[split.target(u2, "test")] == "f"
    assert len(split.history(u2, "valid")) == 0 and [ids[c] for c in split.history(u2, "test")] == ["e"]
    assert split.target(code("u3"), "test") == -1 and len(split.train[code("u3")]) == 3
    assert [ids[c] for c in split.history(code("u1"), "test")] == list("abcd")
    assert not ds.split.is_leave_one_out(ds.histories())  # not what from_dataset derives


def test_is_leave_one_out_means_equal_to_from_dataset():
    ds = _shipped(("u1", "u3"))
    assert ds.split is not None and ds.split.is_leave_one_out(ds.histories())
    shipped, derived = LeaveOneOut.from_predefined(ds), LeaveOneOut.from_dataset(ds)
    assert np.array_equal(shipped.test_target, derived.test_target)
    assert np.array_equal(shipped.valid_target, derived.valid_target)


def test_from_predefined_refuses_a_split_that_is_not_leave_one_out():
    from llmrank.data.presplit import PredefinedSplit

    ds = _shipped(("u1",))
    u1 = np.array([ds.user_code("u1")], np.int32)
    ds.split = PredefinedSplit({"valid": (u1, np.array([2], np.int32)),
                                "test": (u1, np.array([4], np.int32))})  # valid not second-to-last
    with pytest.raises(DataError, match="not leave-one-out"):
        LeaveOneOut.from_predefined(ds)


def test_codes_outside_the_catalog_are_refused_not_wrapped():
    """A target of -1 (a user without a test item) or a negative code in ``exclude`` used to
    index from the end: the last item was silently excluded and -1 came back as a candidate."""
    with pytest.raises(ValueError, match="target -1 is not an item code"):
        random_candidates(30, -1, np.array([1, 2]), n_negatives=5)
    with pytest.raises(ValueError, match="exclude holds codes outside"):
        sample_negatives(30, np.array([3, -1]), 5, user_rng(0, 0))
    with pytest.raises(ValueError, match="exclude holds codes outside"):
        sample_negatives(30, np.array([30]), 5, user_rng(0, 0))
    assert sorted(sample_negatives(3, np.array([0, 1]), 1, user_rng(0, 0)).tolist()) == [2]
