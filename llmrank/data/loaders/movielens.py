"""MovieLens loaders: 100K (``u.data``/``u.item``/``u.user``, latin-1), 1M and 10M (``::``
separated ``.dat`` files; titles and tags read line by line as UTF-8, else latin-1), and 20M/25M/32M/latest/latest-small (CSV with header)."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from llmrank.data.columns import EventColumns, read_clean_table
from llmrank.data.dataset import Dataset
from llmrank.data.lines import (
    UTF8_OR_LATIN1,
    ErrorPolicy,
    LoadReport,
    iter_lines,
    parse_float,
    parse_int,
    require_events,
    split_fields,
)
from llmrank.data.timestamps import MAX_SECONDS, in_range
from llmrank.errors import DataError, MalformedLineError
from llmrank.records import Item, User

log = logging.getLogger(__name__)

_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")
# "Misérables, Les" and "Double vie de Véronique, La (Double Life of Veronique, The)"
_ARTICLE = re.compile(
    r"^(?P<body>.*?), (?P<article>The|A|An|Les|Le|La|L'|Il|El|Los|Las|Lo|Gli|I|Das|Der|Die|Den|Det|De|Het|Une|Un)"
    r"(?P<alt>\s+\(.*\))?$"
)
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
ML1M_AGES = {"1": "under 18", "18": "18-24", "25": "25-34", "35": "35-44", "45": "45-49", "50": "50-55", "56": "56+"}
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)


def split_title(raw: str) -> tuple[str, int | None]:
    """'Shawshank Redemption, The (1994)' -> ('The Shawshank Redemption', 1994)."""
    raw = raw.strip()
    year = None
    m = _YEAR.match(raw)
    if m:
        raw, year = m.group("title").strip(), int(m.group("year"))
    # only a trailing article moves (optionally followed by an alternative title in brackets)
    a = _ARTICLE.match(raw)
    if a:
        article = a.group("article")
        joiner = "" if article.endswith("'") else " "
        raw = f"{article}{joiner}{a.group('body')}{a.group('alt') or ''}"
    return raw, year


def detect_format(path: Path) -> str:
    if (path / "u.data").is_file():
        return "ml-100k"
    if (path / "ratings.dat").is_file():
        return "ml-1m" if (path / "users.dat").is_file() else "ml-10m"
    if (path / "ratings.csv").is_file():
        return "ml-csv"
    raise DataError(
        f"{path} does not look like a MovieLens folder (expected u.data, ratings.dat or ratings.csv)"
    )


def load_movielens(
    path: str | Path, *, name: str | None = None, on_error: ErrorPolicy = "skip",
    report: LoadReport | None = None,
) -> Dataset:
    """Load any MovieLens release from its unpacked folder; the format is detected."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"MovieLens folder not found: {path}")
    report = report if report is not None else LoadReport()
    fmt = detect_format(path)
    name = name or path.name
    if fmt == "ml-100k":
        return _load_100k(path, name, on_error, report)
    if fmt in ("ml-1m", "ml-10m"):
        return _load_dat(path, name, on_error, report)
    return _load_csv(path, name, on_error, report)


# ---- helpers shared by the formats -------------------------------------------------------

def _ratings(path: Path, sep: str, encoding: str, header: bool, on_error: ErrorPolicy,
             report: LoadReport) -> EventColumns:
    """Rating events; a clean file takes the pyarrow fast path (same result, ~10x faster).
    None at all is an error (a header-only file after a truncated download, say)."""
    skipped_before = report.skipped
    fast = read_clean_table(path, sep=sep, n_fields=4, header=header, encoding=encoding,
                            types={2: "float64", 3: "int64"}, report=report,
                            accept=lambda cols: bool(np.isfinite(cols[2]).all()) and in_range(cols[3]))
    if fast is not None:
        users, items, rating, ts = fast
        return EventColumns(users, items, ts, rating.astype(np.float32))
    events = EventColumns()
    users, items, stamps, ratings = events.users, events.items, events.timestamps, events.ratings
    for line_no, text in iter_lines(path, encoding=encoding, report=report, on_error=on_error, skip_header=header):
        try:  # the common, clean line: one split and two conversions
            uid, iid, r, t = text.split(sep)
            uid, iid, rating, ts = uid.strip(), iid.strip(), float(r), int(t)
            if not uid or not iid or not math.isfinite(rating) or abs(ts) > MAX_SECONDS:
                raise ValueError
        except ValueError:  # anything odd: the careful parse names the problem
            try:
                uid, iid, rating, ts = _careful_rating(text, sep, str(path), line_no)
            except MalformedLineError as err:
                report.problem(err, on_error)
                continue
        users.append(uid)
        items.append(iid)
        stamps.append(ts)
        ratings.append(rating)
    require_events(len(events), path, report, skipped_before=skipped_before)
    return events


def _careful_rating(text: str, sep: str, path: str, line_no: int) -> tuple[str, str, float, int]:
    f = split_fields(text, sep=sep, n_fields=4, path=path, line_no=line_no)
    uid, iid = f[0].strip(), f[1].strip()
    if not uid or not iid:
        raise MalformedLineError(path, line_no, "empty user or item id")
    rating = parse_float(f[2], what="rating", path=path, line_no=line_no)
    if not math.isfinite(rating):  # NaN would read as 'unrated', inf as a score
        raise MalformedLineError(path, line_no, f"rating is not a finite number: {f[2]!r}")
    ts = parse_int(f[3], what="timestamp", path=path, line_no=line_no)
    if abs(ts) > MAX_SECONDS:  # beyond year 9999 (or int64): a corrupt value, not a time
        raise MalformedLineError(path, line_no, f"timestamp out of range: {f[3]!r}")
    return uid, iid, rating, ts


def _unique(ids_seen: set[str], iid: str, path: Path, line_no: int, report: LoadReport,
            on_error: ErrorPolicy) -> bool:
    if iid in ids_seen:
        report.problem(MalformedLineError(str(path), line_no, f"duplicate id {iid!r} (first one kept)"), on_error)
        return False
    ids_seen.add(iid)
    return True


def _tags(path: Path, sep: str, encoding: str, header: bool, on_error: ErrorPolicy,
          report: LoadReport) -> dict[str, tuple[str, ...]]:
    """Item -> unique tags, most applied first."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    if not path.is_file():
        return {}
    for line_no, text in iter_lines(path, encoding=encoding, report=report, on_error=on_error, skip_header=header):
        try:
            f = split_fields(text, sep=sep, n_fields=4, path=str(path), line_no=line_no, quoted=sep == ",")
        except MalformedLineError as err:
            report.problem(err, on_error)
            continue
        tag = f[2].strip().lower()
        if tag:
            counts[f[1].strip()][tag] += 1
    return {iid: tuple(t for t, _ in c.most_common()) for iid, c in counts.items()}


def _genres(field: str) -> tuple[str, ...]:
    return tuple(g for g in field.strip().split("|") if g and g != "(no genres listed)")


# ---- formats -------------------------------------------------------------------------------

def _load_100k(path: Path, name: str, on_error: ErrorPolicy, report: LoadReport) -> Dataset:
    items: list[Item] = []
    seen: set[str] = set()
    item_file = path / "u.item"
    for line_no, text in iter_lines(item_file, encoding="latin-1", report=report, on_error=on_error):
        try:
            f = split_fields(text, sep="|", n_fields=5 + len(ML100K_GENRES), path=str(item_file), line_no=line_no)
            flags = f[5:]
            if any(x not in ("0", "1") for x in flags):
                raise MalformedLineError(str(item_file), line_no, "genre flags must be 0 or 1")
        except MalformedLineError as err:
            report.problem(err, on_error)
            continue
        iid = f[0].strip()
        if not _unique(seen, iid, item_file, line_no, report, on_error):
            continue
        title, year = split_title(f[1])
        genres = tuple(g for g, flag in zip(ML100K_GENRES, flags, strict=True) if flag == "1" and g != "unknown")
        attrs = {k: v for k, v in (("release_date", f[2]), ("imdb_url", f[4])) if v}
        items.append(Item(iid, title, year, genres, attributes=attrs))

    users: list[User] = []
    seen_users: set[str] = set()
    user_file = path / "u.user"
    if user_file.is_file():
        for line_no, text in iter_lines(user_file, encoding="latin-1", report=report, on_error=on_error):
            try:
                f = split_fields(text, sep="|", n_fields=5, path=str(user_file), line_no=line_no)
            except MalformedLineError as err:
                report.problem(err, on_error)
                continue
            uid = f[0].strip()
            if _unique(seen_users, uid, user_file, line_no, report, on_error):
                users.append(User(uid, {"age": f[1], "gender": f[2], "occupation": f[3], "zip": f[4]}))

    events = _ratings(path / "u.data", "\t", "latin-1", False, on_error, report)
    return Dataset.from_arrays(name, items, users, *events.arrays())


def _load_dat(path: Path, name: str, on_error: ErrorPolicy, report: LoadReport) -> Dataset:
    tags = _tags(path / "tags.dat", "::", UTF8_OR_LATIN1, False, on_error, report)
    items: list[Item] = []
    seen: set[str] = set()
    movie_file = path / "movies.dat"
    for line_no, text in iter_lines(movie_file, encoding=UTF8_OR_LATIN1, report=report, on_error=on_error):
        try:
            f = split_fields(text, sep="::", n_fields=3, path=str(movie_file), line_no=line_no)
        except MalformedLineError as err:
            report.problem(err, on_error)
            continue
        iid = f[0].strip()
        if _unique(seen, iid, movie_file, line_no, report, on_error):
            title, year = split_title(f[1])
            items.append(Item(iid, title, year, _genres(f[2]), tags.get(iid, ())))

    users: list[User] = []
    user_file = path / "users.dat"
    if user_file.is_file():
        seen_users: set[str] = set()
        for line_no, text in iter_lines(user_file, encoding="latin-1", report=report, on_error=on_error):
            try:
                f = split_fields(text, sep="::", n_fields=5, path=str(user_file), line_no=line_no)
            except MalformedLineError as err:
                report.problem(err, on_error)
                continue
            uid = f[0].strip()
            if not _unique(seen_users, uid, user_file, line_no, report, on_error):
                continue
            occ = int(f[3]) if f[3].isdecimal() and int(f[3]) < len(ML1M_OCCUPATIONS) else None
            users.append(User(uid, {
                "gender": f[1], "age": ML1M_AGES.get(f[2], f[2]),
                "occupation": ML1M_OCCUPATIONS[occ] if occ is not None else f[3], "zip": f[4],
            }))
    events = _ratings(path / "ratings.dat", "::", "latin-1", False, on_error, report)
    return Dataset.from_arrays(name, items, users, *events.arrays())


def _load_csv(path: Path, name: str, on_error: ErrorPolicy, report: LoadReport) -> Dataset:
    tags = _tags(path / "tags.csv", ",", "utf-8", True, on_error, report)
    links: dict[str, dict[str, str]] = {}
    link_file = path / "links.csv"
    if link_file.is_file():
        for line_no, text in iter_lines(link_file, report=report, on_error=on_error, skip_header=True):
            try:
                f = split_fields(text, sep=",", n_fields=3, path=str(link_file), line_no=line_no)
            except MalformedLineError as err:
                report.problem(err, on_error)
                continue
            links[f[0]] = {k: v for k, v in (("imdb_id", f[1]), ("tmdb_id", f[2])) if v}

    items: list[Item] = []
    seen: set[str] = set()
    movie_file = path / "movies.csv"
    for line_no, text in iter_lines(movie_file, report=report, on_error=on_error, skip_header=True):
        try:
            f = split_fields(text, sep=",", n_fields=3, path=str(movie_file), line_no=line_no, quoted=True)
        except MalformedLineError as err:
            report.problem(err, on_error)
            continue
        iid = f[0].strip()
        if _unique(seen, iid, movie_file, line_no, report, on_error):
            title, year = split_title(f[1])
            items.append(Item(iid, title, year, _genres(f[2]), tags.get(iid, ()), attributes=links.get(iid, {})))
    events = _ratings(path / "ratings.csv", ",", "utf-8", True, on_error, report)
    return Dataset.from_arrays(name, items, [], *events.arrays())
