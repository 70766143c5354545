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
