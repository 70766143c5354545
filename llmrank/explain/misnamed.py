"""Checks that a thing the explanation names is what the text says it is. A small model
writes 'The user enjoyed the movie "Drama"' (a genre called a film) and 'the recommended
item, "Dave (1993)"' of a history title while recommending another film: every name in
those sentences is known, so the list checks pass them, but the sentence is false
(eval/RESULTS.md section 5.3 counts both)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from llmrank.explain.titles import WORD, aliases, cited, normalize_text

# "the movie", "a film", "the title" ... directly before a name
_FILM_NOUN = re.compile(r"\b(?:movie|film|picture|show|series|title)s?\s*:?\s*$", re.I)
# "the recommended item/movie", "this recommendation", optionally "specifically"/"namely"/"called"
_RECOMMENDED = re.compile(
    r"\b(?:the|this)\s+recommended\s+(?:item|movie|film|title|pick)|\bthis\s+recommendation",
    re.I)
_FILLER = {"specifically", "namely", "called", "titled", "entitled", "which", "is", "the",
           "movie", "film"}


def genre_called_a_title(text: str, vocabulary: Iterable[str],
                         known_titles: Iterable[str]) -> str | None:
    """A catalog term (a genre) named as if it were a film: 'the movie "Drama"', 'the film
    Comedy'. None when a known title carries that very name."""
    known_titles = list(known_titles)
    titled = {normalize_text(a) for t in known_titles if t for a in aliases(t)}
    inside = [(start, end) for start, end, _ in cited(text, known_titles)]
    for term in dict.fromkeys(t for t in vocabulary if t):
        if normalize_text(term) in titled:
            continue
        words = WORD.findall(term)
        if not words:
            continue
        name = r"\W+".join(re.escape(w) for w in words)
        for m in re.finditer(rf"[\"“'‘]?(?<!\w)({name})(?!\w)", text, re.I):
            named = m.group(0)[0] != m.group(1)[0] or m.group(1)[0].isupper()  # quoted or capitalised
            in_title = any(a <= m.start(1) < b for a, b in inside)  # 'the movie Children of Men'
            if named and not in_title and _FILM_NOUN.search(text[:m.start()]):
                return term
    return None


def misnamed_item(text: str, item_title: str, known_titles: Iterable[str]) -> str | None:
    """A known title other than the recommended one that the text calls the recommended
    item ('the recommended item, "Dave (1993)"' when the item is 'Safe')."""
    item_names = {normalize_text(a) for a in aliases(item_title)}
    for rec in _RECOMMENDED.finditer(text):
        found = cited(text[rec.end():], [item_title, *known_titles])
        if not found:
            continue
        start, _, title = found[0]
        between = WORD.findall(text[rec.end():rec.end() + start].lower())
        if any(w not in _FILLER for w in between):
            continue  # "the recommended item because you liked Heat": Heat is not its name
        if not {normalize_text(a) for a in aliases(title)} & item_names:
            return title
    return None
