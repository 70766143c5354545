"""Generic CSV / JSON lines / Parquet tables with a column mapping."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrank.data.lines import LoadReport
from llmrank.data.loaders import generic
from llmrank.data.loaders.generic import load_table
from llmrank.data.mapping import ColumnMapping
from llmrank.data.store import save_dataset
from llmrank.errors import ConfigError, DataError, MalformedLineError

from ._files import write

CSV = (
    "cust,sku,when,stars,name,cats,brand\n"
    "c1,s1,2021-01-02T00:00:00Z,5,Red Mug,Kitchen|Mugs,Acme\n"
    'c1,s2,2021-01-01,4,"Tea, green",Food,Leafy\n'
    "c2,s1,2021-01-03 10:00:00,3,Red Mug,Kitchen|Mugs,Acme\n"
)
MAPPING = {"user": "cust", "item": "sku", "timestamp": "when", "rating": "stars", "title": "name",
           "genres": "cats", "attributes": ["brand"]}


def test_csv_with_mapping_and_item_text(tmp_path):
    ds = load_table(write(tmp_path / "shop.csv", CSV), mapping=MAPPING)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 2, 3)
    assert ds.history("c1") == ["s2", "s1"]  # ISO dates ordered
    assert ds.items["s2"].title == "Tea, green" and ds.items["s1"].genres == ("Kitchen", "Mugs")
    assert ds.items["s1"].attributes == {"brand": "Acme"}
    assert int(ds.interactions.timestamp[0]) == 1_609_545_600


def test_guessed_mapping_fast_path_equals_row_path(tmp_path, monkeypatch):
    text = "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{(u + i) % 5 + 1},{1000 + u * 7 + i}\n"
                                                         for u in range(20) for i in range(0, 30, 3))
    path = write(tmp_path / "r.csv", text)
    fast_report = LoadReport()
    fast = load_table(path, report=fast_report)
    monkeypatch.setattr(generic, "_fast_events", lambda *a, **k: None)
    slow = load_table(path)
    assert fast.user_ids == slow.user_ids and fast.item_ids == slow.item_ids
    for col in ("user", "item", "timestamp", "rating"):
        assert np.array_equal(getattr(fast.interactions, col), getattr(slow.interactions, col))
    assert fast_report.lines_read == 200


def test_separate_items_table(tmp_path):
    events = write(tmp_path / "e.tsv", "uid\titem\tts\nu1\tb1\t5\nu1\tb2\t6\n")
    items = write(tmp_path / "books.csv", "item,title,year,description\nb1,Sea Glass,1999,A novel.\n"
                                          "b2,Dune Grass,first printed 2004,Poems.\nb1,dup,2000,x\n")
    report = LoadReport()
    ds = load_table(events, mapping={"user": "uid", "timestamp": "ts"}, items_path=items, report=report)
    assert ds.items["b1"].title == "Sea Glass" and ds.items["b2"].year == 2004
    assert report.skipped == 1 and report.problems[0].startswith(f"{items}:4: duplicate id 'b1'")


def test_malformed_rows_both_policies(tmp_path):
    text = ("user,item,timestamp,rating\n"
            "u1,i1,10,4\n"
            "u1,i2,11\n"          # truncated
            "u2;i1;12;3\n"        # wrong delimiter
            "u2,i3,yesterday,5\n"  # bad timestamp
            ",i1,13,2\n")          # empty id
    path = write(tmp_path / "bad.csv", text)
    report = LoadReport()
    ds = load_table(path, report=report)
    assert len(ds.interactions) == 1 and report.skipped == 4
    assert [p.split(": ")[0] for p in report.problems] == [f"{path}:{n}" for n in (3, 4, 5, 6)]
    with pytest.raises(MalformedLineError) as exc:
        load_table(path, on_error="raise")
    assert (exc.value.path, exc.value.line_no) == (str(path), 3)


def test_no_valid_interactions_names_the_file_and_the_skips(tmp_path):
    path = write(tmp_path / "bad.csv", "user,item,timestamp\nu1,i1,later\n,i2,3\n")
    with pytest.raises(DataError, match=r"no valid interactions \(every data line was malformed: 2 skipped\)") as exc:
        load_table(path)
    assert str(exc.value).startswith(f"{path}: ")


def test_bad_encoding_row(tmp_path):
    path = write(tmp_path / "enc.csv", b"user,item,timestamp\nu1,i1,1\nu\xe9,i2,2\nu2,i2,3\n")
    report = LoadReport()
    ds = load_table(path, report=report)
    assert len(ds.interactions) == 2 and report.problems[0].startswith(f"{path}:3: not valid utf-8")
    assert load_table(path, encoding="latin-1").has_user("ué")


def test_jsonl_lone_surrogate_loads_and_saves(tmp_path):
    path = write(tmp_path / "s.jsonl", '{"user_id": "u1", "item_id": "i1", "timestamp": 1, "title": "Caf\\u00e9 \\ud83d"}\n')
    report = LoadReport()
    ds = load_table(path, report=report)
    assert ds.items["i1"].title == "Café \ufffd" and report.repaired == 1
    save_dataset(ds, tmp_path / "saved")  # Parquet raised UnicodeEncodeError


def test_jsonl_with_ms_and_nested_lists(tmp_path):
    rows = [{"u": "a", "i": 1, "t": 1_600_000_000_500, "title": "One", "genres": ["X", "Y"]},
            {"u": "a", "i": 2, "t": 1_600_000_000_000, "title": "Two"}]
    path = write(tmp_path / "ev.jsonl", "".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    report = LoadReport()
    ds = load_table(path, mapping={"user": "u", "item": "i", "timestamp": "t"}, report=report)
    assert ds.history("a") == ["2", "1"] and ds.items["1"].genres == ("X", "Y")
    assert int(ds.interactions.timestamp.max()) == 1_600_000_000
    assert report.problems[0].startswith(f"{path}:3:")


def test_parquet_round_trip_and_row_numbers(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "ev.parquet"
    pq.write_table(pa.table({"user_id": ["a", "b", None], "item_id": [1, 2, 3],
                             "timestamp": pa.array([5, 6, 7], pa.int64())}), path)
    report = LoadReport()
    ds = load_table(path, report=report)
    assert ds.user_ids == ["a", "b"] and ds.item_ids == ["1", "2"]
    assert report.problems == [f"{path}:3: empty user id"]


def test_mapping_parse_and_errors(tmp_path):
    m = ColumnMapping.parse("user=uid,item=sku,attributes=brand;color,timestamp_unit=ms")
    assert (m.user, m.item, m.attributes, m.timestamp_unit) == ("uid", "sku", ("brand", "color"), "ms")
    assert ColumnMapping.parse('{"user": "u"}').user == "u"
    with pytest.raises(ConfigError, match="unknown column mapping keys"):
        ColumnMapping.parse("usr=x")
    with pytest.raises(ConfigError, match="no user column"):
        load_table(write(tmp_path / "x.csv", "a,b\n1,2\n"))
    with pytest.raises(ConfigError, match="not in the file"):
        load_table(write(tmp_path / "y.csv", "user,item\n1,2\n"), mapping={"rating": "stars"})


@pytest.mark.parametrize("bad", [str(10**400), "1e25"])
def test_an_absurd_timestamp_is_one_skipped_line_not_a_crash(tmp_path, bad):
    lines = ['{"user": "u1", "item": "a", "timestamp": 1600000000}',
             f'{{"user": "u1", "item": "b", "timestamp": {bad}}}',
             '{"user": "u2", "item": "a", "timestamp": 1600000001}']
    path = write(tmp_path / "events.jsonl", "\n".join(lines) + "\n")
    report = LoadReport()
    ds = load_table(path, report=report)
    assert len(ds.interactions.user) == 2 and report.skipped == 1
    assert "timestamp out of range" in report.problems[0] and ":2:" in report.problems[0]
    with pytest.raises(MalformedLineError, match="out of range"):
        load_table(path, on_error="raise")


@pytest.mark.parametrize("bad", ["1e25", "inf", "nan"])
def test_the_fast_csv_and_parquet_readers_never_cast_an_absurd_timestamp(tmp_path, bad):
    """A value the fast path cannot keep sends the load to the careful reader, which reports
    the line (it used to become int64 min and sort first in the user's history)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = write(tmp_path / "events.csv", f"user,item,timestamp\nu1,a,1600000000\nu1,b,{bad}\nu2,a,1600000001\n")
    pq_path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user": ["u1", "u1", "u2"], "item": ["a", "b", "a"],
                             "timestamp": [1600000000.0, float(bad), 1600000001.0]}), pq_path)
    for path in (csv_path, pq_path):
        report = LoadReport()
        ds = load_table(path, report=report)
        assert len(ds.interactions.user) == 2 and report.skipped == 1, path
        assert int(ds.interactions.timestamp.min()) == 1600000000


@pytest.mark.parametrize("bad", ["inf", "-inf", "Infinity"])
def test_an_infinite_rating_is_a_reported_line_on_every_reader(tmp_path, bad):
    """An infinite rating loaded as a score on the fast CSV/Parquet path and the row path;
    NaN stays 'unrated', as an empty rating is."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [("u1", "a", "4"), ("u1", "b", bad), ("u2", "a", "nan")]
    csv_path = write(tmp_path / "events.csv", "user,item,rating\n" + "".join(",".join(r) + "\n" for r in rows))
    jsonl_path = write(tmp_path / "events.jsonl", "".join(
        json.dumps({"user": u, "item": i, "rating": float(r)}) + "\n" for u, i, r in rows))
    pq_path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user": [r[0] for r in rows], "item": [r[1] for r in rows],
                             "rating": [float(r[2]) for r in rows]}), pq_path)
    csv_items = write(tmp_path / "titled.csv", "user,item,rating,title\n"
                      + "".join(",".join(r) + ",T\n" for r in rows))  # item text: the row path
    for path, line in ((csv_path, 3), (jsonl_path, 2), (pq_path, 2), (csv_items, 3)):  # CSV: a header
        report = LoadReport()
        ds = load_table(path, report=report)
        assert len(ds.interactions) == 2 and report.skipped == 1, path
        assert report.problems[0].startswith(f"{path}:{line}: rating is not a finite number"), path
        assert np.isnan(ds.interactions.rating[1])


@pytest.mark.parametrize("name", ["events.jsonl.gz", "events.csv.gz"])
@pytest.mark.parametrize("on_error", ["skip", "raise"])
def test_a_gz_file_that_is_not_gzip_is_a_data_error(tmp_path, name, on_error):
    """A plain file named .gz crashed the column look-up with a raw BadGzipFile traceback
    (and a skip-policy read called it 'empty')."""
    text = '{"user": "u1", "item": "a"}\n' if "jsonl" in name else "user,item\nu1,a\n"
    path = write(tmp_path / name, text)
    with pytest.raises(DataError, match="gzip") as exc:
        load_table(path, on_error=on_error)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_truncated_gz_table_keeps_its_rows_and_reports_the_cut(tmp_path, fmt):
    """The quiet look at the first rows (for the columns) must not crash on a gzip file cut
    short early: the real pass keeps the rows before the cut and reports it."""
    import gzip as _gzip

    import numpy as _np

    rows = [f'{{"user": "u{i % 7}", "item": "{i}", "filler": "{_np.random.default_rng(i).random()}"}}'
            for i in range(3000)] if fmt == "jsonl" else \
        ["user,item,filler"] + [f"u{i % 7},{i},{_np.random.default_rng(i).random()}" for i in range(3000)]
    full = _gzip.compress(("\n".join(rows) + "\n").encode())
    path = write(tmp_path / f"events.{fmt}.gz", full[: len(full) // 50])
    report = LoadReport()
    ds = load_table(path, report=report)
    assert 0 < len(ds.interactions) < 3000 and report.skipped == 1 and "gzip" in report.problems[0]


def test_a_utf8_bom_on_a_latin1_csv_is_not_part_of_the_first_column(tmp_path):
    """With encoding='latin-1' the BOM decoded to 'ï»¿' and renamed the first column, so the
    guessed mapping found no user column."""
    path = write(tmp_path / "events.csv", b"\xef\xbb\xbfuser,item,title\nu1,a,Mis\xe9rables\n")
    ds = load_table(path, encoding="latin-1", on_error="raise")
    assert ds.user_ids == ["u1"] and ds.items["a"].title == "Misérables"


def test_columns_padded_after_the_comma_are_still_guessed(tmp_path):
    # 'user_id,item_id, rating, timestamp' (a space after each comma): user and item were
    # guessed, rating and timestamp were not, and the load silently kept neither
    path = write(tmp_path / "padded.csv", "user_id,item_id, rating, timestamp\n"
                 "1,10, 4, 200\n1,11, 5, 100\n")
    ds = load_table(path)
    assert ds.history("1") == ["11", "10"]
    assert ds.interactions.rating.tolist() == [4.0, 5.0]
    assert ColumnMapping().with_guesses([" Rating "]).rating == " Rating "


def test_a_space_list_separator_from_the_command_line(tmp_path):
    # 'list_sep= ' was stripped to '' and every load crashed in str.split with 'empty separator'
    m = ColumnMapping.parse("user=u,item=i,genres=g,list_sep= ")
    assert m.list_sep == " "
    ds = load_table(write(tmp_path / "g.csv", "u,i,g\n1,2,Action Comedy\n"), mapping=m)
    assert ds.items["2"].genres == ("Action", "Comedy")
    assert ColumnMapping.parse("user=u, list_sep = ;").list_sep == ";"
    with pytest.raises(ConfigError, match="list_sep"):
        ColumnMapping.from_dict({"list_sep": ""})
