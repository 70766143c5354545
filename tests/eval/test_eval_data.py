"""The eval harness loads any dataset the data layer reads, not only MovieLens folders."""

from __future__ import annotations

import pytest

from llmrank.errors import DatasetNotFoundError
from llmrank.eval.config import EvalData
from llmrank.eval.data import prepare


def test_the_embedded_catalog_is_evaluable():
    prepared = prepare(EvalData(dataset="catalog", kcore=5))
    assert prepared.path is None
    assert prepared.preprocessing["kcore"] == 5
    assert prepared.dataset.n_items <= 200 and len(prepared.split.eval_users()) > 0
    assert "catalog" in prepared.describe()


def test_a_generic_table_is_evaluable(tmp_path):
    rows = ["user_id,item_id,timestamp"]
    rows += [f"u{u},i{(u + t) % 7},{100 * t}" for u in range(4) for t in range(5)]
    (tmp_path / "events.csv").write_text("\n".join(rows) + "\n")
    prepared = prepare(EvalData(dataset=str(tmp_path / "events.csv")))
    assert prepared.path == tmp_path / "events.csv"
    assert prepared.dataset.n_users == 4 and len(prepared.split.eval_users()) == 4


def test_a_missing_dataset_says_where_it_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path)):
        prepare(EvalData(dataset="no-such-data", data_dir=str(tmp_path)))


def _shipped():
    import numpy as np

    from llmrank.data.dataset import Dataset
    from llmrank.data.presplit import PredefinedSplit
    from llmrank.records import Item

    seqs = {"u1": "abcde", "u3": "abc", "u2": "ef"}
    events = [(u, i, t, None) for u, seq in seqs.items() for t, i in enumerate(seq)]
    ds = Dataset.from_records("shipped", [Item(i, i) for i in "abcdef"], [], events)
    users = np.array([ds.user_code("u1"), ds.user_code("u2")], np.int32)
    ds.split = PredefinedSplit({"valid": (users, np.array([3, 0], np.int32)),
                                "test": (users, np.array([4, 1], np.int32))})
    return ds


def test_a_shipped_split_is_evaluated_as_shipped():
    """The eval harness used to re-derive a split (u1, u3) and ignore the shipped one."""
    ds = _shipped()
    prepared = prepare(EvalData(dataset="shipped"), dataset=ds)
    assert sorted(ds.user_ids[u] for u in prepared.split.eval_users()) == ["u1", "u2"]
    assert prepared.preprocessing["split"].startswith("shipped with the data")
    assert prepare(EvalData(dataset="shipped", min_rating=0.0), dataset=ds).split.eval_users().size == 2


def test_a_filter_that_would_move_a_shipped_split_is_refused():
    from llmrank.errors import ConfigError

    with pytest.raises(ConfigError, match="ships its own split"):
        prepare(EvalData(dataset="shipped", kcore=2), dataset=_shipped())
