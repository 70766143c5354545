"""load_dataset: names, paths, data directory precedence, format detection, preprocessing."""

from __future__ import annotations

import json

import pytest

from llmrank.config import DATA_DIR_ENV, DataConfig, load_config
from llmrank.data import load_dataset
from llmrank.data.resolve import data_dir, detect_format
from llmrank.data.store import save_dataset
from llmrank.errors import ConfigError, DataError, DatasetNotFoundError

from ._files import write


def test_default_config_is_the_embedded_catalog():
    ds = load_dataset(DataConfig(options={"n_users": 20}))
    assert ds.name == "catalog" and ds.n_items == 200 and ds.n_users == 20
    assert ds.report is not None and ds.report.format == "catalog" and ds.report.seconds >= 0


def test_known_name_in_data_dir_flag_and_env(ml100k_dir, monkeypatch, tmp_path):
    root = ml100k_dir.parent
    ds = load_dataset(DataConfig(dataset="ml-100k", data_dir=str(root), kcore=5))
    assert ds.report is not None and ds.report.source == str(root / "ml-100k")
    assert ds.report.steps and ds.report.steps[0].startswith("5-core:")
    monkeypatch.setenv(DATA_DIR_ENV, str(root))
    assert data_dir() == root and data_dir(str(tmp_path)) == tmp_path
    assert load_dataset(DataConfig(dataset="ml-100k")).n_users == 943
    monkeypatch.delenv(DATA_DIR_ENV)
    assert str(data_dir()) == "data"


def test_ml_latest_small_5core_through_config(ml_small_dir):
    cfg = load_config({"data": {"dataset": str(ml_small_dir), "kcore": 5}}).data
    ds = load_dataset(cfg)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (610, 3_650, 90_274)


def test_min_rating_step_is_recorded(ml100k_dir):
    ds = load_dataset(DataConfig(dataset=str(ml100k_dir), min_rating=4))
    assert len(ds.interactions) == 55_375 and "min_rating 4" in ds.report.steps[0]


def test_missing_known_name_says_how_to_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as exc:
        load_dataset(DataConfig(dataset="ml-1m", data_dir=str(tmp_path)))
    msg = str(exc.value)
    assert "llmrank data download ml-1m" in msg and "--data-dir" in msg and DATA_DIR_ENV in msg
    with pytest.raises(DatasetNotFoundError, match="not a known name"):
        load_dataset(DataConfig(dataset="no-such-thing", data_dir=str(tmp_path)))


def test_detect_format_for_each_kind(tmp_path, ml100k_dir, catalog):
    assert detect_format(ml100k_dir) == "movielens"
    assert detect_format(save_dataset(catalog, tmp_path / "saved")) == "llmrank"
    write(tmp_path / "rb" / "rb.inter", "user_id:token\titem_id:token\nu\ti\n")
    assert detect_format(tmp_path / "rb") == "recbole"
    assert detect_format(tmp_path / "rb" / "rb.inter") == "recbole"
    write(tmp_path / "amz" / "Books.jsonl", json.dumps({"user_id": "u", "parent_asin": "p", "rating": 5,
                                                         "timestamp": 1}) + "\n")
    assert detect_format(tmp_path / "amz") == "amazon"
    assert detect_format(tmp_path / "amz" / "Books.jsonl") == "amazon"
    assert detect_format(write(tmp_path / "e.jsonl", '{"u": 1}\n')) == "jsonl"
    assert detect_format(write(tmp_path / "e.csv", "u,i\n")) == "csv"
    assert detect_format(write(tmp_path / "e.parquet", b"")) == "parquet"
    junk = write(tmp_path / "junk" / "x.bin", b"\0")
    with pytest.raises(DataError, match="unknown file type"):
        detect_format(junk)
    with pytest.raises(DataError, match="cannot tell"):
        detect_format(junk.parent)


def test_detect_format_missing_path_and_amazon_2014_records(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no such file or folder"):
        detect_format(tmp_path / "nowhere.csv")
    line = json.dumps({"reviewerID": "u", "asin": "p", "overall": 5.0, "unixReviewTime": 1}) + "\n"
    assert detect_format(write(tmp_path / "reviews.json", line)) == "amazon"


def test_generic_mapping_and_option_checks(tmp_path):
    path = write(tmp_path / "ev.csv", "who,what,when\na,x,1\na,y,2\nb,x,3\n")
    ds = load_dataset(DataConfig(dataset=str(path), mapping={"user": "who", "item": "what", "timestamp": "when"}))
    assert ds.history("a") == ["x", "y"] and ds.report.format == "csv"
    with pytest.raises(ConfigError, match="does not take options"):
        load_dataset(DataConfig(dataset=str(path), options={"bogus": 1}))
    with pytest.raises(ConfigError, match="column mapping applies"):
        load_dataset(DataConfig(mapping={"user": "u"}))
    with pytest.raises(ConfigError, match="unknown dataset loader"):
        load_dataset(DataConfig(dataset=str(path), format="nope"))


def test_on_error_raise_reaches_the_loader(tmp_path):
    from llmrank.errors import MalformedLineError

    path = write(tmp_path / "ev.csv", "user,item\na,x\nb\n")
    assert load_dataset(DataConfig(dataset=str(path))).report.skipped == 1
    with pytest.raises(MalformedLineError, match=r"ev\.csv:3:"):
        load_dataset(DataConfig(dataset=str(path), on_error="raise"))


def test_a_format_for_the_embedded_catalog_is_a_config_error():
    """load_dataset(dataset='catalog', format='movielens') silently loaded the catalog (the
    CLI refuses the flag since a45d7eb; a library caller got no word either)."""
    with pytest.raises(ConfigError, match="does not apply to the embedded catalog"):
        load_dataset(DataConfig(dataset="catalog", format="movielens"))
    assert load_dataset(DataConfig(dataset="catalog", format="catalog")).n_items > 0
