"""MovieLens loaders on the real files, and on small malformed copies written in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.data import columns
from llmrank.data.dataset import Dataset
from llmrank.data.lines import LoadReport
from llmrank.data.loaders import movielens
from llmrank.data.loaders.movielens import load_movielens, split_title
from llmrank.data.splits import kcore
from llmrank.errors import DataError, MalformedLineError

from ._files import write

GENRE_FLAGS = "|".join(["0"] * 19)


def test_ml100k_counts_and_latin1_titles(ml100k):
    assert (len(ml100k.interactions), ml100k.n_users, ml100k.n_items) == (100_000, 943, 1_682)
    assert ml100k.items["543"].title == "Les Misérables"
    assert ml100k.items["543"].year == 1995
    assert "é" in ml100k.items["1104"].title  # "C'est arrivé près de chez vous"
    assert ml100k.users["1"].attributes["occupation"] == "technician"
    assert ml100k.report is None or ml100k.report.skipped == 0


def test_ml_latest_small_counts_quoted_titles_and_tags(ml_small):
    assert (len(ml_small.interactions), ml_small.n_users, ml_small.n_items) == (100_836, 610, 9_742)
    assert ml_small.items["11"].title == "The American President"  # quoted, comma, article
    assert ml_small.items["1"].genres == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    assert any(it.tags for it in ml_small.items.values())
    r = ml_small.interactions.rating
    assert float(r.min()) == 0.5 and float(r.max()) == 5.0


def test_ml_latest_small_5core_matches_llamarec(ml_small):
    core = kcore(ml_small, 5)
    assert (core.n_users, core.n_items, len(core.interactions)) == (610, 3_650, 90_274)


def test_histories_are_time_ordered(ml100k):
    inter = ml100k.interactions
    for u in (0, 5, 100):
        codes = ml100k.histories()[u]
        ts = {int(i): int(t) for i, t in zip(inter.item[inter.user == u], inter.timestamp[inter.user == u], strict=True)}
        times = [ts[int(c)] for c in codes]
        assert times == sorted(times)


@pytest.mark.parametrize(("raw", "title", "year"), [
    ("Shawshank Redemption, The (1994)", "The Shawshank Redemption", 1994),
    ("Misérables, Les (1995)", "Les Misérables", 1995),
    ("Avventura, L' (1960)", "L'Avventura", 1960),
    ("City of Lost Children, The (Cité des enfants perdus, La) (1995)",
     "The City of Lost Children (Cité des enfants perdus, La)", 1995),
    ("Babylon 5", "Babylon 5", None),
])
def test_split_title(raw, title, year):
    assert split_title(raw) == (title, year)


@pytest.mark.parametrize("reader", ["python", "arrow"])
def test_fast_paths_equal_line_by_line(ml100k_dir, monkeypatch, reader):
    monkeypatch.setattr(columns, "worth_fast_path", lambda path: reader == "arrow")
    report = LoadReport()
    fast = load_movielens(ml100k_dir, report=report)
    assert report.lines_read == 100_000 + 1_682 + 943
    monkeypatch.setattr(movielens, "read_clean_table", lambda *a, **k: None)
    slow = load_movielens(ml100k_dir)
    assert fast.item_ids == slow.item_ids and fast.user_ids == slow.user_ids
    for col in ("user", "item", "timestamp", "rating", "order"):
        assert np.array_equal(getattr(fast.interactions, col), getattr(slow.interactions, col))


# ---- malformed files ---------------------------------------------------------------------------

def _ml100k(tmp_path, data: str | bytes, items: str | None = None):
    folder = tmp_path / "ml-mini"
    write(folder / "u.item", items or f"1|Alpha (1990)|01-Jan-1990||http://x|{GENRE_FLAGS}\n"
                                       f"2|Beta (1991)|01-Jan-1991||http://x|{GENRE_FLAGS}\n")
    write(folder / "u.data", data)
    return folder


def _both(folder):
    report = LoadReport()
    ds = load_movielens(folder, on_error="skip", report=report)
    with pytest.raises(MalformedLineError) as exc:
        load_movielens(folder, on_error="raise")
    return ds, report, exc.value


def test_truncated_line(tmp_path):
    folder = _ml100k(tmp_path, "1\t1\t5\t100\n1\t2\t4\n2\t1\t3\t300\n")
    ds, report, err = _both(folder)
    assert len(ds.interactions) == 2 and report.skipped == 1
    assert f"{folder / 'u.data'}:2:" in str(err) and (err.line_no, err.path) == (2, str(folder / "u.data"))
    assert report.problems[0].startswith(f"{folder / 'u.data'}:2:")


def test_wrong_delimiter(tmp_path):
    folder = _ml100k(tmp_path, "1\t1\t5\t100\n1,2,4,200\n")
    ds, report, err = _both(folder)
    assert len(ds.interactions) == 1 and report.skipped == 1
    assert err.line_no == 2 and "expected 4 fields" in err.reason


def test_non_numeric_rating(tmp_path):
    folder = _ml100k(tmp_path, "1\t1\tfive\t100\n1\t2\t4\t200\n")
    _, report, err = _both(folder)
    assert err.line_no == 1 and "rating" in err.reason and report.skipped == 1


def test_bad_encoding_in_utf8_csv(tmp_path):
    folder = tmp_path / "ml-csv"
    write(folder / "movies.csv", b"movieId,title,genres\n1,Alpha (1990),Drama\n2,B\xffeta (1991),Comedy\n")
    write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,10\n1,2,3.5,20\n")
    ds, report, err = _both(folder)
    assert err.line_no == 3 and "not valid utf-8" in err.reason
    assert report.skipped == 1 and ds.items["2"].title == ""  # rated item kept, bare


def test_blank_line_before_the_csv_header(tmp_path):
    folder = tmp_path / "ml-csv"
    write(folder / "movies.csv", "\nmovieId,title,genres\n1,Alpha (1990),Drama\n")
    write(folder / "ratings.csv", "\nuserId,movieId,rating,timestamp\n1,1,4.0,10\n")
    report = LoadReport()
    ds = load_movielens(folder, on_error="raise", report=report)  # the header is not a bad row
    assert len(ds.interactions) == 1 and report.skipped == 0 and ds.items["1"].title == "Alpha"


def test_duplicate_item_ids(tmp_path):
    items = (f"1|Alpha (1990)|01-Jan-1990||http://x|{GENRE_FLAGS}\n"
             f"1|Alpha again (1990)|01-Jan-1990||http://x|{GENRE_FLAGS}\n")
    folder = _ml100k(tmp_path, "1\t1\t5\t100\n", items=items)
    ds, report, err = _both(folder)
    assert ds.items["1"].title == "Alpha" and report.skipped == 1
    assert err.line_no == 2 and "duplicate id '1'" in err.reason


def test_empty_file_is_an_error(tmp_path):
    folder = _ml100k(tmp_path, "")
    for policy in ("skip", "raise"):
        with pytest.raises(DataError, match="empty"):
            load_movielens(folder, on_error=policy)


def _ratings_only(tmp_path, fmt: str, ratings: str):
    """A folder of ``fmt`` with one movie and the given ratings text; the ratings file."""
    folder = tmp_path / fmt
    if fmt == "ml-100k":
        return _ml100k(tmp_path, ratings) / "u.data"
    if fmt == "ml-1m":
        write(folder / "movies.dat", "1::Toy Tale (1995)::Animation\n")
        return write(folder / "ratings.dat", ratings)
    write(folder / "movies.csv", "movieId,title,genres\n1,Alpha (1990),Drama\n")
    return write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n" + ratings)


@pytest.mark.parametrize(("fmt", "bad"), [("ml-100k", "1\t1\n"), ("ml-1m", "1::1::x::9\n"), ("ml-csv", "1,1,x,10\n")])
def test_every_rating_malformed_is_an_error_not_an_empty_dataset(tmp_path, fmt, bad):
    path = _ratings_only(tmp_path, fmt, bad)
    with pytest.raises(DataError, match=r"no valid interactions \(every data line was malformed: 1 skipped\)") as exc:
        load_movielens(path.parent)
    assert str(exc.value).startswith(f"{path}: ")


def test_header_only_ratings_csv_is_an_error(tmp_path):
    path = _ratings_only(tmp_path, "ml-csv", "")  # a truncated download
    with pytest.raises(DataError, match=r"no valid interactions \(it holds no data rows\)") as exc:
        load_movielens(path.parent)
    assert str(exc.value).startswith(f"{path}: ")


def test_not_a_movielens_folder(tmp_path):
    with pytest.raises(DataError, match="does not look like a MovieLens folder"):
        load_movielens(tmp_path)


def test_dat_format_double_colon(tmp_path):
    folder = tmp_path / "ml-1m"
    write(folder / "movies.dat", "1::Toy Tale (1995)::Animation|Comedy\n2::Other (1996)::Drama\n")
    write(folder / "users.dat", "1::F::1::1::48067\n")
    write(folder / "ratings.dat", "1::1::5::978300760\n1::2::3::978300761\n2::1::4::978300762\n")
    ds = load_movielens(folder)
    assert isinstance(ds, Dataset) and len(ds.interactions) == 3
    assert ds.users["1"].attributes["age"] == "under 18" and ds.users["1"].attributes["occupation"] == "academic/educator"
    assert ds.history("1") == ["1", "2"]


def test_dat_titles_read_right_in_latin1_or_utf8(tmp_path):
    """ML-1M's movies.dat is latin-1; a .dat file saved as UTF-8 (as later releases and
    re-exports are) must not come out as mojibake ('AmÃ©lie') without a word."""
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "movies.dat").write_bytes("1::Léon (1994)::Drama\n".encode("latin-1")
                                        + "2::Amélie (2001)::Comedy\n".encode())
    (folder / "ratings.dat").write_text("1::1::5::978300760\n1::2::3::978300761\n")
    ds = load_movielens(folder)
    assert ds.items["1"].title == "Léon" and ds.items["2"].title == "Amélie"


@pytest.mark.parametrize("reader", ["python", "arrow", "careful"])
@pytest.mark.parametrize(("fmt", "bad", "why"), [
    ("ml-100k", "2\t1\t4\t99999999999999999999\n", "timestamp"),
    ("ml-100k", "2\t1\t4\t1e30\n", "timestamp"),
    ("ml-1m", "2::1::4::1e300\n", "timestamp"),
    ("ml-csv", "2,1,inf,10\n", "rating"),
    ("ml-csv", "2,1,nan,10\n", "rating"),
    ("ml-100k", "2\t1\t-inf\t10\n", "rating"),
])
def test_absurd_timestamp_or_rating_is_a_malformed_line(tmp_path, monkeypatch, reader, fmt, bad, why):
    """A timestamp beyond int64 / year 9999 crashed the load with a raw OverflowError, and an
    inf or NaN rating was loaded as if it were a score; both are reported with their line."""
    monkeypatch.setattr(columns, "worth_fast_path", lambda path: reader == "arrow")
    if reader == "careful":
        monkeypatch.setattr(movielens, "read_clean_table", lambda *a, **k: None)
    good = {"ml-100k": "1\t1\t5\t100\n", "ml-1m": "1::1::5::100\n", "ml-csv": "1,1,5.0,100\n"}[fmt]
    path = _ratings_only(tmp_path, fmt, good + bad)
    ds, report, err = _both(path.parent)
    assert len(ds.interactions) == 1 and report.skipped == 1
    assert (err.path, err.line_no) == (str(path), 3 if fmt == "ml-csv" else 2) and why in err.reason


@pytest.mark.parametrize("reader", ["python", "arrow", "careful"])
def test_a_utf8_bom_on_latin1_files_is_not_part_of_the_first_id(tmp_path, monkeypatch, reader):
    """u.item/u.data re-saved by an editor that adds a UTF-8 BOM: decoded as latin-1 the BOM
    became 'ï»¿' glued to the first id, silently making a phantom item '\\xef\\xbb\\xbf1' (with
    the title) and a bare item '1' (with the ratings)."""
    monkeypatch.setattr(columns, "worth_fast_path", lambda path: reader == "arrow")
    if reader == "careful":
        monkeypatch.setattr(movielens, "read_clean_table", lambda *a, **k: None)
    bom = b"\xef\xbb\xbf"
    items = bom + f"1|Les Mis\xe9rables (1995)|01-Jan-1995||http://x|{GENRE_FLAGS}\n".encode("latin-1")
    folder = _ml100k(tmp_path, bom + b"1\t1\t5\t100\n2\t1\t4\t200\n")
    write(folder / "u.item", items)
    ds = load_movielens(folder, on_error="raise")
    assert ds.item_ids == ["1"] and ds.user_ids == ["1", "2"]
    assert ds.items["1"].title == "Les Misérables"


def test_a_superscript_digit_occupation_is_kept_as_text_not_a_crash(tmp_path):
    folder = tmp_path / "ml-1m"
    write(folder / "movies.dat", "1::Toy Tale (1995)::Animation\n")
    write(folder / "users.dat", "1::F::1::\u00b2::48067\n".encode("latin-1"))  # int("²") raised ValueError
    write(folder / "ratings.dat", "1::1::5::978300760\n")
    assert load_movielens(folder).users["1"].attributes["occupation"] == "\u00b2"
