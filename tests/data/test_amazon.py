"""Amazon 2018 (JSON reviews + Python-literal metadata, gzipped) and 2023 (ms timestamps)."""

from __future__ import annotations

import json

import pytest

from llmrank.data.lines import LoadReport
from llmrank.data.loaders.amazon import detect_version, find_files, load_amazon
from llmrank.errors import DataError, MalformedLineError

from ._files import write


def _jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def _amazon_2018(folder, *, extra_reviews=""):
    reviews = [
        {"overall": 5.0, "verified": True, "reviewerID": "U1", "asin": "A1", "unixReviewTime": 1_300_000_000},
        {"overall": 3.0, "reviewerID": "U1", "asin": "A2", "unixReviewTime": 1_200_000_000},
        {"overall": 4.0, "reviewerID": "U2", "asin": "A1", "reviewTime": "09 13, 2009"},
    ]
    write(folder / "Toys_5.json.gz", _jsonl(reviews) + extra_reviews, gz=True)
    # the 2018 metadata files are often Python literals, with HTML in the text fields
    meta = (
        "{'asin': 'A1', 'title': 'Wooden &amp; Blocks', 'category': ['Toys', 'Building', 'Blocks'], "
        "'description': ['<b>Solid</b> beech', 'set'], 'brand': 'Acme', 'date': 'June 3, 2012', "
        "'feature': ['50 pieces'], 'price': '$12.99'}\n"
        + json.dumps({"asin": "A2", "title": "Kite", "category": ["Toys"], "description": []}) + "\n"
        + json.dumps({"asin": "A9", "title": "Never reviewed"}) + "\n"
    )
    write(folder / "meta_Toys.json.gz", meta, gz=True)
    return folder


def test_amazon_2018_reviews_and_literal_metadata(tmp_path):
    folder = _amazon_2018(tmp_path / "toys")
    assert detect_version(folder / "Toys_5.json.gz") == "2018"
    ds = load_amazon(folder)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 2, 3)
    a1 = ds.items["A1"]
    assert a1.title == "Wooden & Blocks" and a1.genres == ("Building", "Blocks")
    assert a1.description == "Solid beech set 50 pieces" and a1.year == 2012
    assert a1.attributes == {"brand": "Acme", "price": "$12.99"}
    assert ds.history("U1") == ["A2", "A1"]  # ordered by time, not file order
    assert "A9" not in ds.items  # metadata of unreviewed items is not kept by default
    assert "A9" in load_amazon(folder, all_meta_items=True).items


def test_amazon_2018_malformed_review_both_policies(tmp_path):
    folder = _amazon_2018(tmp_path / "toys", extra_reviews='{"overall": 2.0, "reviewerID": "U3"}\n{"trunc')
    report = LoadReport()
    ds = load_amazon(folder, report=report)
    assert len(ds.interactions) == 3 and report.skipped == 2
    path = folder / "Toys_5.json.gz"
    assert report.problems[0].startswith(f"{path}:4: missing or empty 'asin'")
    assert report.problems[1].startswith(f"{path}:5: not a valid JSON record")
    with pytest.raises(MalformedLineError) as exc:
        load_amazon(folder, on_error="raise")
    assert exc.value.line_no == 4


@pytest.mark.parametrize("bad", [1e25, "1e25", float("inf"), 10**30, 10**400, -(10**400)])  # 10**400: no float
def test_amazon_absurd_timestamp_is_a_skipped_line(tmp_path, bad):
    line = json.dumps({"overall": 2.0, "reviewerID": "U3", "asin": "A1", "unixReviewTime": bad}) + "\n"
    folder = _amazon_2018(tmp_path / "toys", extra_reviews=line)
    report = LoadReport()
    ds = load_amazon(folder, report=report)
    assert len(ds.interactions) == 3 and report.skipped == 1
    assert report.problems[0].startswith(f"{folder / 'Toys_5.json.gz'}:4: ")
    assert "timestamp" in report.problems[0]


def test_amazon_without_a_valid_review_is_an_error(tmp_path):
    path = write(tmp_path / "reviews_X.json", _jsonl([{"overall": 5.0, "reviewerID": "U1", "asin": "A1"}]))
    with pytest.raises(DataError, match=r"no valid interactions \(every data line was malformed: 1 skipped\)") as exc:
        load_amazon(path)
    assert str(exc.value).startswith(f"{path}: ")


def test_amazon_2023_ms_timestamps_order_within_a_second(tmp_path):
    reviews = [
        {"rating": 5.0, "user_id": "U1", "parent_asin": "P2", "asin": "X", "timestamp": 1_588_687_728_923},
        {"rating": 4.0, "user_id": "U1", "parent_asin": "P1", "asin": "Y", "timestamp": 1_588_687_728_100},
        {"rating": 2.0, "user_id": "U2", "parent_asin": "P1", "timestamp": 1_600_000_000_000},
    ]
    meta = [
        {"parent_asin": "P1", "title": "Face Cream", "features": ["SPF 30"], "description": ["Light."],
         "categories": ["Beauty", "Skin"], "details": {"Brand": "Glow", "Date First Available": "March 5, 2013"},
         "main_category": "All Beauty", "store": "Glow Store", "price": None, "average_rating": 4.1},
        {"parent_asin": "P2", "title": "Brush", "categories": [], "details": {}},
    ]
    write(tmp_path / "All_Beauty.jsonl", _jsonl(reviews))
    write(tmp_path / "meta_All_Beauty.jsonl", _jsonl(meta))
    ds = load_amazon(tmp_path / "All_Beauty.jsonl")
    assert ds.history("U1") == ["P1", "P2"]  # same second: the milliseconds decide
    assert int(ds.interactions.timestamp.max()) == 1_600_000_000  # stored in seconds
    p1 = ds.items["P1"]
    assert p1.genres == ("Beauty", "Skin") and p1.year == 2013 and p1.description == "Light. SPF 30"
    assert p1.attributes["store"] == "Glow Store" and p1.attributes["Brand"] == "Glow"
    assert "price" not in p1.attributes and "average_rating" not in p1.attributes  # no leaky stats


def test_find_files_and_errors(tmp_path):
    folder = _amazon_2018(tmp_path / "toys")
    assert find_files(folder) == (folder / "Toys_5.json.gz", folder / "meta_Toys.json.gz")
    write(folder / "Games.json", "{}\n")
    with pytest.raises(DataError, match="expected one Amazon reviews file"):
        find_files(folder)
    write(tmp_path / "other.jsonl", _jsonl([{"who": "x"}]))
    with pytest.raises(DataError, match="not an Amazon reviews file"):
        detect_version(tmp_path / "other.jsonl")


@pytest.mark.parametrize("bad", ["inf", "-Infinity", 1e400])
def test_amazon_infinite_rating_is_a_skipped_line(tmp_path, bad):
    """An infinite rating loaded as a score (and made 'data info --json' print Infinity)."""
    line = json.dumps({"overall": bad, "reviewerID": "U3", "asin": "A1", "unixReviewTime": 1_300_000_000}) + "\n"
    folder = _amazon_2018(tmp_path / "toys", extra_reviews=line)
    report = LoadReport()
    ds = load_amazon(folder, report=report)
    assert len(ds.interactions) == 3 and report.skipped == 1
    assert report.problems[0].startswith(f"{folder / 'Toys_5.json.gz'}:4: rating")
