"""RecBole atomic files (.inter, .item, .user) as a Dataset."""

from __future__ import annotations

import pytest

from llmrank.data.lines import LoadReport
from llmrank.data.loaders.recbole import load_recbole
from llmrank.errors import DataError, MalformedLineError

from ._files import write


def test_atomic_files_with_typed_headers(tmp_path):
    folder = tmp_path / "mini"
    write(folder / "mini.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
          "u1\ti1\t4.0\t881250949.0\nu1\ti2\t3\t881250900\nu2\ti1\t5\t881250960\n")
    write(folder / "mini.item", "item_id:token\ttitle:token\tcategories:token_seq\tprice:float\n"
          "i1\tA Lamp\tHome Lighting\t9.5\ni2\tA Chair\tHome\t\n")
    write(folder / "mini.user", "user_id:token\tage:float\tgender:token\nu1\t24\tM\n")
    ds = load_recbole(folder)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 2, 3)
    assert ds.history("u1") == ["i2", "i1"]
    assert ds.items["i1"].title == "A Lamp" and ds.items["i1"].genres == ("Home", "Lighting")
    assert ds.items["i1"].attributes == {"price": "9.5"}
    assert ds.users["u1"].attributes == {"age": "24", "gender": "M"}
    assert ds.split is None


def test_atomic_malformed_rows_both_policies(tmp_path):
    folder = tmp_path / "m"
    write(folder / "m.inter", "user_id:token\titem_id:token\trating:float\n"
          "u1\ti1\t4\nu1 i2 3\nu2\ti1\tbad\n")
    report = LoadReport()
    ds = load_recbole(folder, report=report)
    assert len(ds.interactions) == 1 and report.skipped == 2
    assert report.problems[0].startswith(f"{folder / 'm.inter'}:3: expected 3 tab-separated fields")
    assert report.problems[1].startswith(f"{folder / 'm.inter'}:4: rating is not a number")
    with pytest.raises(MalformedLineError) as exc:
        load_recbole(folder, on_error="raise")
    assert exc.value.line_no == 3


@pytest.mark.parametrize(("rows", "why"), [("", "it holds no data rows"),
                                          ("u1\ti1\tx\n", "every data line was malformed: 1 skipped")])
def test_no_valid_interactions_is_an_error(tmp_path, rows, why):
    path = write(tmp_path / "e" / "e.inter", "user_id:token\titem_id:token\trating:float\n" + rows)
    with pytest.raises(DataError, match=f"no valid interactions \\({why}\\)") as exc:
        load_recbole(path.parent)
    assert str(exc.value).startswith(f"{path}: ")


def test_bad_header_and_missing_files(tmp_path):
    write(tmp_path / "h" / "h.inter", "user_id\titem_id:token\nu\ti\n")
    with pytest.raises(MalformedLineError, match=r"h.inter:1: header field 'user_id'"):
        load_recbole(tmp_path / "h")
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError):
        load_recbole(tmp_path / "none")


@pytest.mark.parametrize("bad", ["1e25", "inf", "nan"])
@pytest.mark.parametrize("other_bad_line", [False, True])  # the fast reader, then the careful one
def test_an_absurd_timestamp_is_a_reported_line_not_a_corrupt_event(tmp_path, bad, other_bad_line):
    folder = tmp_path / "t"
    rows = f"u1\ti1\t881250949\nu1\ti2\t{bad}\nu2\ti1\t881250960\n" + ("u3 i9\n" if other_bad_line else "")
    write(folder / "t.inter", "user_id:token\titem_id:token\ttimestamp:float\n" + rows)
    report = LoadReport()
    ds = load_recbole(folder, report=report)
    assert len(ds.interactions) == 2 and ds.history("u1") == ["i1"]
    assert report.skipped == 1 + other_bad_line
    assert report.problems[0].startswith(f"{folder / 't.inter'}:3: timestamp")
    assert int(ds.interactions.timestamp.min()) == 881250949


def test_fast_reader_declining_a_corrupt_timestamp_counts_the_file_once(tmp_path):
    """The fast reader recorded the file and its lines, then the careful reader reread the
    file after the range check declined it: the report said 6 lines read of a 3-line file."""
    path = write(tmp_path / "t" / "t.inter", "user_id:token\titem_id:token\ttimestamp:float\n"
                 "u1\ti1\t881250949\nu1\ti2\t1e25\nu2\ti1\t881250960\n")
    report = LoadReport()
    load_recbole(path.parent, report=report)
    assert report.files == [str(path)] and report.lines_read == 3 and report.skipped == 1


@pytest.mark.parametrize("bad", ["inf", "-inf"])
@pytest.mark.parametrize("other_bad_line", [False, True])  # the fast reader, then the careful one
def test_an_infinite_rating_is_a_reported_line(tmp_path, bad, other_bad_line):
    folder = tmp_path / "r"
    rows = f"u1\ti1\t4\nu1\ti2\t{bad}\nu2\ti1\t5\n" + ("u3 i9\n" if other_bad_line else "")
    write(folder / "r.inter", "user_id:token\titem_id:token\trating:float\n" + rows)
    report = LoadReport()
    ds = load_recbole(folder, report=report)
    assert len(ds.interactions) == 2 and report.skipped == 1 + other_bad_line
    assert report.problems[0].startswith(f"{folder / 'r.inter'}:3: rating")


def test_an_infinite_release_year_is_no_year_not_a_crash(tmp_path):
    folder = tmp_path / "y"
    write(folder / "y.inter", "user_id:token\titem_id:token\nu1\ti1\nu1\ti2\n")
    write(folder / "y.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\n"
          "i1\tToy Story\tinf\ni2\tHeat\t1995\n")
    ds = load_recbole(folder)  # int(float('inf')) raised a bare OverflowError
    assert (ds.items["i1"].title, ds.items["i1"].year) == ("Toy Story", None)
    assert ds.items["i2"].year == 1995


def test_a_mapping_key_or_field_that_does_not_apply_is_an_error_not_ignored(tmp_path):
    from llmrank.errors import ConfigError

    folder = tmp_path / "mp"
    write(folder / "mp.inter", "user_id:token\titem_id:token\tscore:float\ttimestamp:float\n"
          "u1\ti1\t4\t100\nu1\ti2\t5\t200\n")
    write(folder / "mp.item", "item_id:token\tmovie_title:token_seq\ni1\tToy Story\ni2\tHeat\n")
    ds = load_recbole(folder, mapping={"rating": "score", "title": "movie_title"})
    assert ds.interactions.rating.tolist() == [4.0, 5.0] and ds.items["i2"].title == "Heat"
    # a typo in a key was ignored: the title was still found by the default names
    with pytest.raises(ConfigError, match="titel"):
        load_recbole(folder, mapping={"titel": "movie_title"})
    # a mapped field the files lack: every rating read as NaN (unrated), every title as ''
    with pytest.raises(DataError, match="'ratings'"):
        load_recbole(folder, mapping={"rating": "ratings"})
    with pytest.raises(DataError, match="'name'"):
        load_recbole(folder, mapping={"title": "name"})


@pytest.mark.parametrize("bad_line", [False, True])  # clean file: fast reader; else the careful one
def test_fractional_timestamps_order_events_within_a_second(tmp_path, bad_line):
    """RecBole sorts by the float timestamp: 100.2 comes before 100.7 whatever the file
    order. Truncating to whole seconds made the two a tie broken by file order, which moved
    the leave-one-out test target; -0.5 is a time before 0, not at it."""
    folder = tmp_path / "f"
    rows = ("user_id:token\titem_id:token\ttimestamp:float\n"
            "u1\tlast\t100.7\nu1\tfirst\t99.5\nu1\tmiddle\t100.2\n"
            "u2\tb\t0.0\nu2\ta\t-0.5\n")
    write(folder / "f.inter", rows + ("u3\ti\tnot-a-time\n" if bad_line else ""))
    ds = load_recbole(folder)
    assert ds.history("u1") == ["first", "middle", "last"]
    assert ds.history("u2") == ["a", "b"]
    assert sorted(ds.interactions.timestamp.tolist()) == [-1, 0, 99, 100, 100]
