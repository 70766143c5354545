"""The canonical Parquet folder: exact round trips, fast reloads, refusal to clobber."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrank.data.loaders.recbole import load_recbole
from llmrank.data.store import is_saved_dataset, load_saved, save_dataset
from llmrank.errors import DataError

from ._files import write
from .test_recbole_presplit import SEQS, _write_presplit


def _same(a, b):
    assert a.name == b.name and a.item_ids == b.item_ids and a.user_ids == b.user_ids
    assert a.items == b.items and a.users == b.users
    for col in ("user", "item", "timestamp", "rating", "order"):
        assert np.array_equal(getattr(a.interactions, col), getattr(b.interactions, col), equal_nan=True)
    assert a.histories()[0].tolist() == b.histories()[0].tolist()


def test_round_trip_catalog(tmp_path, catalog):
    path = save_dataset(catalog, tmp_path / "cat")
    assert is_saved_dataset(path)
    _same(catalog, load_saved(path))


def test_round_trip_real_data(tmp_path, ml100k):
    _same(ml100k, load_saved(save_dataset(ml100k, tmp_path / "ml")))


def test_round_trip_keeps_predefined_split(tmp_path):
    _write_presplit(tmp_path / "src", "b", augment=True, maxlen=50)
    ds = load_recbole(tmp_path / "src")
    back = load_saved(save_dataset(ds, tmp_path / "out"))
    assert back.split is not None and back.split.names() == ["train", "valid", "test"]
    for stage in back.split.names():
        for x, y in zip(ds.split.rows(stage), back.split.rows(stage), strict=True):
            assert np.array_equal(x, y)
    assert back.history("1") == SEQS["1"]


def test_overwrite_rules(tmp_path, catalog):
    path = save_dataset(catalog, tmp_path / "cat")
    with pytest.raises(DataError, match="exists"):
        save_dataset(catalog, path)
    save_dataset(catalog, path, overwrite=True)
    other = write(tmp_path / "notes" / "a.txt", "keep me")
    with pytest.raises(DataError, match="not an llmrank dataset folder"):
        save_dataset(catalog, other.parent, overwrite=True)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_file_where_the_folder_should_go_is_a_data_error(tmp_path, catalog, overwrite):
    """'data convert ml-100k out.parquet' onto an existing file crashed with a raw
    NotADirectoryError traceback (and must never replace the user's file)."""
    target = write(tmp_path / "out.parquet", "keep me")
    with pytest.raises(DataError, match="is a file, not a folder"):
        save_dataset(catalog, target, overwrite=overwrite)
    assert target.read_text() == "keep me"


def test_manifest_mismatch_is_caught(tmp_path, catalog):
    path = save_dataset(catalog, tmp_path / "cat")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["interactions"] += 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="manifest says"):
        load_saved(path)
    with pytest.raises(DataError, match=r"no manifest\.json"):
        load_saved(tmp_path)
