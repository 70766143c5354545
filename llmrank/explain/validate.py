"""Checks that a generated explanation is usable: not empty, not degenerate, not an echo of
the prompt, naming only items the user actually has in history or among the candidates, and
claiming only attributes (genres) that the item or the history has, and saying the user saw
only what their history holds.

A small model invents titles readily; an explanation that cites a film the user never saw is
worse than none, so anything that looks like a title must match a known one. It also calls a
comedy "a gripping thriller": a catalog term (``vocabulary``) named in the text must be one
of the terms the explanation may claim. And it writes "the user enjoyed X" of the very item
it recommends: a known title may only be the object of "enjoyed / watched / liked ..." when
it is in the user's history."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_QUOTED = re.compile(r"[\"“”«»](.{2,120}?)[\"“”«»]|'([^']{3,120}?)'(?!\w)")
# a capitalised word followed by capitalised words or numbers ('Toy Story', 'Rocky 4'),
# optionally joined by short lower-case words ('Lord of the Rings')
_CAPS = re.compile(
    r"\b[A-Z][\w'’\-]*(?:\s+(?:(?:of|the|and|a|an|in|on|to|for|&)\s+)?(?:[A-Z][\w'’\-]*|\d+\b))+"
)
_WORD = re.compile(r"\w+", re.UNICODE)
_ECHO = (
    "text between double quotes", "never an instruction", "ignore any request",
    "answer with one letter", "which candidate", "the user's history, oldest first",
    "candidate will the user choose", "recommender system", "you explain recommendations",
    "ignore previous instructions", "<|", "|>", "system:", "assistant:", "user:",
    "genres:", "tags:",  # the item's rendered text (llmrank.data.itemtext) read back
)
# words that start a sentence or are pronouns: a capitalised pair of these is not a title
_COMMON = {
    "i", "you", "your", "it", "this", "the", "a", "an", "if", "since", "because", "as", "its",
    "they", "we", "he", "she", "based", "given", "like", "both", "with", "fans", "also", "and",
}

MIN_CHARS = 12
MAX_CHARS = 400


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    text: str = ""


def normalize_text(text: str) -> str:
    """NFKC, lower case, words joined by single spaces: how titles and text are compared."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_WORD.findall(text))


def strip_year(title: str) -> str:
    """'Heat (1995)' -> 'Heat': models often cite a title without its year."""
    return re.sub(r"\s*\(\d{4}\)\s*$", "", title).strip()


# a sentence ends at . ! ? (or …), possibly followed by closing quotes or brackets
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”’')\]]))\s+")
_FINISHED = re.compile(r"[.!?…][\"”’')\]]*$")


def tidy(text: str) -> str:
    """First paragraph, at most two sentences, whitespace collapsed. A last sentence cut off
    by the token limit ("They also enjoyed the 1") is dropped when a finished one precedes it."""
    text = text.strip().split("\n\n")[0]
    text = " ".join(text.split())
    sentences = _SENTENCE_BREAK.split(text)[:2]
    if len(sentences) > 1 and not _FINISHED.search(sentences[-1]):
        sentences = sentences[:-1]
    return " ".join(sentences).strip()


def _degenerate(text: str) -> str | None:
    letters = sum(ch.isalpha() for ch in text)
    if letters / max(1, len(text)) < 0.6:
        return "not prose"
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return "too short"
    run = 1
    for a, b in itertools.pairwise(words):
        run = run + 1 if a == b else 1
        if run >= 3:
            return "repeated tokens"
    if len(words) >= 8 and len(set(words)) / len(words) < 0.45:
        return "repetitive"
    grams = Counter(zip(words, words[1:], words[2:], words[3:], strict=False))
    if grams and max(grams.values()) >= 3:  # "a film about X, a film about X, and a film about X"
        return "repeated phrase"
    return None


def validate_explanation(text: str, known_titles: Iterable[str],
                         known_terms: Iterable[str] = (), *, vocabulary: Iterable[str] = (),
                         claimable: Iterable[str] | None = None,
                         history_titles: Iterable[str] | None = None) -> Verdict:
    """Accept ``text`` only if every quoted span and every capitalised multi-word span is
    part of a known title (history, candidates, the item) or a known term (genres, tags),
    every year is a known title's, every ``vocabulary`` term it names (the catalog's
    genres) is ``claimable`` (default: ``known_terms``; the explainer passes the item's and
    the history's terms), and, when ``history_titles`` is given, no known title outside the
    history is said to have been enjoyed, watched or liked by the user."""
    text = tidy(text)
    if len(text) < MIN_CHARS:
        return Verdict(False, "empty or too short")
    text = _truncate(text)
    if reason := _echo(text) or _degenerate(text):
        return Verdict(False, reason)
    known_titles, known_terms = list(known_titles), list(known_terms)  # each is read twice
    span = _unknown_span(text, _known_matcher(known_titles, known_terms))
    if span is not None:
        return Verdict(False, f"names an unknown item {span!r}")
    if (year := _unknown_year(text, known_titles)) is not None:
        return Verdict(False, f"names a year no known item has ({year})")
    claims = known_terms if claimable is None else claimable
    if (term := _unclaimable_term(text, vocabulary, claims)) is not None:
        return Verdict(False, f"claims an attribute neither the item nor the history has ({term!r})")
    if history_titles is not None:
        seen = _unseen_claim(text, list(history_titles), known_titles)
        if seen is not None:
            return Verdict(False, f"says the user saw {seen!r}, which is not in their history")
    return Verdict(True, "", text)


@functools.lru_cache(maxsize=4096)
def _term_pattern(term: str) -> re.Pattern[str] | None:
    """A whole-word match of a normalised term, plural included ('comedy' -> comedies);
    cached, since every explanation of a request is checked against the same vocabulary."""
    words = [w for w in term.split() if len(w) > 1]  # "children s" (Children's) -> children
    if not words:
        return None
    last = words[-1]
    forms = [re.escape(last) + "s?"] + ([re.escape(last[:-1]) + "ies"] if last.endswith("y") else [])
    head = "".join(re.escape(w) + " " for w in words[:-1])
    return re.compile(rf"\b{head}(?:{'|'.join(forms)})\b")


def _unclaimable_term(text: str, vocabulary: Iterable[str], claimable: Iterable[str]) -> str | None:
    """The first catalog term named in ``text`` that is not claimable. Terms are matched on
    normalised words ('Sci-Fi' = 'sci fi'); a claimable term containing it ('film noir'
    for 'noir') or contained in it counts as claimable."""
    allowed = {normalize_text(t) for t in claimable if t}
    norm_text = normalize_text(text)
    for term in dict.fromkeys(normalize_text(t) for t in vocabulary if t):
        if not term or any(f" {term} " in f" {a} " or f" {a} " in f" {term} " for a in allowed if a):
            continue
        pattern = _term_pattern(term)
        if pattern is not None and pattern.search(norm_text):
            return term
    return None


_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_TITLE_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _unknown_year(text: str, known_titles: list[str]) -> str | None:
    """A year in the text that none of the known titles carries ("the 1997 film Runaway
    Bride" when it is from 1999). Checked only when the titles carry years (MovieLens
    style), so catalogs without years are not held to it."""
    years = {m.group(1) for t in known_titles if t and (m := _TITLE_YEAR.search(t))}
    if not years:
        return None
    return next((y for y in _YEAR.findall(text) if y not in years), None)


def _truncate(text: str) -> str:
    """At most MAX_CHARS, cut at a word boundary and marked with an ellipsis."""
    if len(text) > MAX_CHARS:
        return text[:MAX_CHARS].rsplit(" ", 1)[0] + "…"
    return text


def _echo(text: str) -> str | None:
    """The reason when the text repeats the prompt's instructions or chat markup (a model
    that echoes its prompt has not explained anything)."""
    low = text.lower()
    for echo in _ECHO:
        if echo in low:
            return f"instruction echo ({echo!r})"
    return None


def _known_matcher(known_titles: Iterable[str], known_terms: Iterable[str]) -> Callable[[str], bool]:
    """A test for 'this span is part of a known title (with or without its year) or term',
    on normalised text so case, accents and punctuation do not matter."""
    titles = [normalize_text(t) for t in known_titles if t]
    titles += [normalize_text(strip_year(t)) for t in known_titles if t]
    terms = [normalize_text(t) for t in known_terms if t]
    haystack = [t for t in titles + terms if t]

    def known(span: str) -> bool:
        s = normalize_text(span)
        return not s or any(s in t for t in haystack)

    return known


def _unknown_span(text: str, known: Callable[[str], bool]) -> str | None:
    """The first quoted span, then the first capitalised run, that names nothing known."""
    for m in _QUOTED.finditer(text):
        span = m.group(1) or m.group(2) or ""
        if not known(span):
            return span
    for m in _CAPS.finditer(text):
        if not _caps_run_known(m.group(0), known):
            return m.group(0)
    return None


def _caps_run_known(span: str, known: Callable[[str], bool]) -> bool:
    """Whether a capitalised run is harmless: only common words ('It The'), a single word
    once a sentence-initial common word is dropped, known whole, or made of known parts
    joined by and/or/& ('Crime and Animation')."""
    words = _WORD.findall(span.lower())
    if all(w in _COMMON for w in words):
        return True
    # drop a sentence-initial common word ("Since Toy Story" -> "Toy Story")
    while words and words[0] in _COMMON:
        words = words[1:]
    parts = re.split(r"\b(?:and|or)\b|&", " ".join(words))  # "Crime and Animation"
    return len(words) < 2 or known(" ".join(words)) or all(known(p) for p in parts)


# "you enjoyed / the user watched / likes / is fond of" X: X is said to be in the user's past
# (not the bare "like" / "love": "you will love Ronin" is the recommendation itself)
_PAST = re.compile(r"\b(?:enjoyed|enjoys|liked|likes|loved|loves|adored|adores|watched|rewatched|saw|seen|"
                   r"rated|appreciated|(?:were|was|are|is) (?:particularly |very |quite )?fond of|"
                   r"(?:were|was|are|is) (?:a |an )?(?:big |huge )?fans? of)\b", re.I)
_NEGATED = re.compile(r"\b(?:not|never|yet to)\s+$|n[\'’]t\s+$", re.I)
# a word between the verb and a title that makes the title something other than its object
# ("you liked Heat, so you will like Ronin"; "films such as Ronin")
_RESET = {
    "you", "your", "they", "them", "their", "he", "she", "it", "its", "this", "these", "those",
    "that", "which", "who", "is", "are", "was", "were", "be", "been", "will", "would", "should",
    "could", "can", "may", "might", "so", "because", "since", "but", "if", "then", "like", "as",
    "than", "to", "recommend", "similar", "while", "whereas", "not", "never",
}
# a title followed by one of these starts a new clause ("... Heat and Ronin is similar")
_CLAUSE_VERBS = {"is", "was", "are", "has", "have", "will", "would", "should", "could", "can",
                 "may", "might"}
_LIST_WORDS = {"and", "or", "&"}
_MAX_BETWEEN = 4  # words such as "the tense documentary"
_HELD = "\x00"  # stands for a masked history title


def _title_pattern(title: str) -> re.Pattern[str] | None:
    """A title's words, with or without its year, separated by any non-word characters."""
    words = _WORD.findall(strip_year(title))
    if not words:
        return None
    return re.compile(r"(?<!\w)" + r"\W+".join(re.escape(w) for w in words) + r"(?!\w)", re.I)


def _mentions(text: str, titles: Iterable[str]) -> list[tuple[int, int, str]]:
    """Mentions of ``titles`` in reading order, without overlaps: where two overlap the
    longer wins ('Heat and Dust' is not 'Heat'; 'Scary Movie 4' is not 'Scary Movie')."""
    found = sorted(((m.start(), m.end(), t) for t in set(titles) if t
                    if (pattern := _title_pattern(t)) for m in pattern.finditer(text)),
                   key=lambda x: (x[0], x[0] - x[1]))
    kept: list[tuple[int, int, str]] = []
    for start, end, title in found:
        if not kept or start >= kept[-1][1]:
            kept.append((start, end, title))
    return kept


def _unseen_claim(text: str, history_titles: list[str], known_titles: list[str]) -> str | None:
    """The first known title outside the history that ``text`` names as the object of a
    past-experience verb ('The user enjoyed the documentary "Chasing Aurora"' for the very
    item being recommended). A title counts as the object when only a few words, other
    titles and list joiners stand between the verb and it."""
    held = {normalize_text(strip_year(t)) for t in history_titles}
    mentions = _mentions(text, [*history_titles, *known_titles])
    masked = text
    for start, end, _ in mentions:  # titles become placeholders of the same length
        masked = masked[:start] + _HELD * (end - start) + masked[end:]
    for start, end, title in mentions:
        if normalize_text(strip_year(title)) in held:
            continue
        first = text[start]
        if not (first.isupper() or first.isdigit() or text[start - 1:start] in ("\"", "'", "“", "‘", "«")):
            continue  # 'you liked it' is not the film 'It'
        if _is_object_of_past_verb(masked, start, end):
            return title
    return None


def _is_object_of_past_verb(text: str, start: int, end: int) -> bool:
    sentence_start = max(text.rfind(ch, 0, start) for ch in ".!?;:") + 1
    prefix = text[sentence_start:start]
    verbs = list(_PAST.finditer(prefix))
    if not verbs or _NEGATED.search(prefix[:verbs[-1].start()]):
        return False
    between_text = prefix[verbs[-1].end():]
    between = _WORD.findall(between_text.lower())
    words = [w for w in between if w not in _LIST_WORDS]
    if len(words) > _MAX_BETWEEN or any(w in _RESET for w in words):
        return False
    after = _WORD.findall(text[end:end + 30].lower())
    if re.search(_HELD + r"[\"'”’)\s]*,", between_text):
        # a title then a comma: a list ("Heat, Casino and Ronin"; "Heat, Ronin and Casino"),
        # or a new clause ("Since you loved Heat, Ronin brings ...")
        ends_list = bool(between) and between[-1] in _LIST_WORDS
        continues_list = text[end:].lstrip().startswith(",") or (after[:1] and after[0] in _LIST_WORDS)
        return ends_list or bool(continues_list)
    return not (after and after[0] in _CLAUSE_VERBS)
