"""How explanation checks find titles in free text: normalised comparison, the year stripped
('Heat (1995)' is cited as 'Heat'), the other names a catalog title carries ('Jet Li's
Fearless (Huo Yuan Jia)' is cited as 'Jet Li's Fearless'), and non-overlapping mentions where
the longer title wins.

The functions of one title are cached: an explanation is checked against every history and
candidate title, so a request explaining 100 items over a 2,000-item history asked for the
same aliases a million times (9 s, under the server's model lock)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=65536)
def normalize_text(text: str) -> str:
    """NFKC, lower case, words joined by single spaces: how titles and text are compared."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(WORD.findall(text))


@lru_cache(maxsize=65536)
def strip_year(title: str) -> str:
    """'Heat (1995)' -> 'Heat': models often cite a title without its year."""
    return re.sub(r"\s*\(\d{4}\)\s*$", "", title).strip()


# MovieLens-style catalogs move a leading article to the end ("Boy in the Striped Pyjamas, The")
_TRAILING_ARTICLE = re.compile(r"^(.+?),\s*(The|A|An|Les|La|Le|L'|Il|El|Los|Las|Das|Der|Die|Den|Det)$", re.I)
_ALTERNATE = re.compile(r"^(.*?\S)\s*\(([^()]+)\)$")  # "Main Title (Alternate Title)"


@lru_cache(maxsize=65536)
def aliases(title: str) -> tuple[str, ...]:
    """The names a catalog title may be cited by: without its year, the main and the
    parenthesised alternate title ('Nosferatu (Nosferatu, eine Symphonie des Grauens)'), each
    also with a trailing article moved to the front ('Pyjamas, The' -> 'The Pyjamas')."""
    base = strip_year(title)
    forms = [base]
    if m := _ALTERNATE.match(base):
        forms += [m.group(1), re.sub(r"^(?:a\.k\.a\.|aka)\s+", "", m.group(2).strip(), flags=re.I)]
    for form in list(forms):
        if m := _TRAILING_ARTICLE.match(form):
            forms.append(f"{m.group(2)} {m.group(1)}")
    return tuple(f for f in dict.fromkeys(f.strip() for f in forms) if WORD.search(f))


@lru_cache(maxsize=65536)
def title_pattern(title: str) -> re.Pattern[str] | None:
    """A title's words, with or without its year, separated by any non-word characters."""
    words = WORD.findall(strip_year(title))
    if not words:
        return None
    return re.compile(r"(?<!\w)" + r"\W+".join(re.escape(w) for w in words) + r"(?!\w)", re.I)


def mentions(text: str, titles: Iterable[str]) -> list[tuple[int, int, str]]:
    """Mentions of ``titles`` (by any of their aliases) in reading order as (start, end,
    title), without overlaps: where two overlap the longer wins ('Heat and Dust' is not
    'Heat'; 'Scary Movie 4' is not 'Scary Movie'); a name that several titles share is read
    as the first of them given (callers list the history first), the same in every process."""
    found = sorted(((m.start(), m.end(), t) for t in dict.fromkeys(titles) if t for a in aliases(t)
                    if (pattern := title_pattern(a)) for m in pattern.finditer(text)),
                   key=lambda x: (x[0], x[0] - x[1]))
    kept: list[tuple[int, int, str]] = []
    for start, end, title in found:
        if not kept or start >= kept[-1][1]:
            kept.append((start, end, title))
    return kept


_OPENING_QUOTES = ("\"", "'", "“", "‘", "«")
_YEAR_AFTER = re.compile(r"\s*\(?\s*(?:1[89]\d\d|20\d\d)\b")
# words that start a sentence as pronouns: "It is a horror film" does not cite 'It' (2017)
_PRONOUNS = {"it", "its", "her", "hers", "him", "his", "us", "we", "they", "them", "he", "she",
             "me", "you", "this", "that", "these", "those", "there"}


def cited(text: str, titles: Iterable[str]) -> list[tuple[int, int, str]]:
    """The :func:`mentions` that read as a name, not as the same words in prose: quoted,
    followed by a year, or written with the capital (or digit) the title starts with, and
    for a one-word title that is a pronoun at the start of a sentence, only quoted or with
    its year. 'you will love it' does not cite 'It' (2017), 'keeps you up' does not cite
    'Up', 'a romance' does not cite 'Romance' (1999), 'rated 9' does not cite '9'."""
    out = []
    for start, end, title in mentions(text, titles):
        if (start > 0 and text[start - 1] in _OPENING_QUOTES) or _YEAR_AFTER.match(text[end:]):
            out.append((start, end, title))
            continue
        words = WORD.findall(text[start:end])
        if len(words) == 1 and words[0].isdigit():
            continue  # a bare number is not a citation
        first = text[start]
        catalogued = next((a for a in aliases(title) if (p := title_pattern(a)) and p.fullmatch(text[start:end])),
                          strip_year(title))
        written = next((ch for ch in catalogued if ch.isalnum()), "")
        if not (first.isupper() or first.isdigit() or first == written):
            continue
        sentence_start = not text[:start].strip() or text[:start].rstrip()[-1] in ".!?;:"
        if sentence_start and len(words) == 1 and words[0].lower() in _PRONOUNS:
            continue
        out.append((start, end, title))
    return out
