"""Amazon item metadata as Items: HTML cleaned, duplicates and id-less records reported."""

from __future__ import annotations

import json

import pytest

from llmrank.data.lines import LoadReport
from llmrank.data.loaders.amazon_meta import clean_html, read_meta
from llmrank.errors import MalformedLineError

from ._files import write


def test_duplicate_metadata(tmp_path):
    meta = tmp_path / "meta_Toys.json.gz"
    text = (json.dumps({"asin": "A2", "title": "Kite"}) + "\n") * 2 + json.dumps({"asin": "A2", "title": "Other"}) + "\n"
    write(meta, text, gz=True)
    report = LoadReport()
    items = read_meta(meta, "2018", "asin", None, "skip", report)
    assert [(i.item_id, i.title) for i in items] == [("A2", "Kite")]
    assert report.skipped == 1  # the exact repeat is harmless; the conflicting one is reported
    assert "duplicate id 'A2'" in report.problems[0] and report.problems[0].startswith(f"{meta}:3:")
    with pytest.raises(MalformedLineError, match="first one, line 1, kept"):
        read_meta(meta, "2018", "asin", None, "raise", LoadReport())


def test_wanted_ids_key_fallback_and_records_without_id(tmp_path):
    rows = [{"parent_asin": "P1", "title": "Cream"}, {"asin": "P2", "title": "Brush"},
            {"parent_asin": " ", "title": "No id"}, {"parent_asin": "P3", "title": "Unwanted"}]
    meta = write(tmp_path / "meta_Beauty.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    report = LoadReport()
    items = read_meta(meta, "2023", "parent_asin", {"P1", "P2"}, "skip", report)
    assert [i.item_id for i in items] == ["P1", "P2"]  # 'asin' stands in for a missing key
    assert report.problems == [f"{meta}:3: metadata record without 'parent_asin'"]


def test_2014_category_paths(tmp_path):
    rec = "{'asin': 'B1', 'title': 'Lamp', 'categories': [['Home', 'Lighting', 'Lamps'], ['Gifts']]}\n"
    items = read_meta(write(tmp_path / "meta_Home.json", rec), "2018", "asin", None, "skip", LoadReport())
    assert items[0].genres == ("Lighting", "Lamps")  # the first path, without its root


@pytest.mark.parametrize(("value", "text"), [
    (None, ""), ("<p>Tea &amp; <b>cakes</b></p>", "Tea & cakes"), (["a\n", ["b", "<br/>c"]], "a b c"), (12.5, "12.5"),
])
def test_clean_html(value, text):
    assert clean_html(value) == text


@pytest.mark.parametrize(("value", "text"), [
    ("Fits bowls &lt; 5 in. wide and &gt; 3 in. deep", "Fits bowls < 5 in. wide and > 3 in. deep"),
    ("Cable < 2 m, load > 1 kg", "Cable < 2 m, load > 1 kg"),
    ("I <3 it, rated >4 stars", "I <3 it, rated >4 stars"),
    ("Line one&lt;br /&gt;line two", "Line one line two"),  # escaped markup is still markup
])
def test_clean_html_keeps_comparisons_that_are_not_tags(value, text):
    # entities are decoded before tags are dropped; '<' that opens no tag (a space or a digit
    # after it) used to swallow the text up to the next '>'
    assert clean_html(value) == text
