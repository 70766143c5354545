"""Checks that a generated explanation is usable: not empty, not degenerate, not cut off, not
an echo of the prompt, naming only items the user actually has in history or among the
candidates, claiming only attributes (genres) that the item or a film it cites has, saying the
user saw only what their history holds, and citing something real.

A small model invents titles readily; an explanation that cites a film the user never saw is
worse than none, so anything that looks like a title must match a known one. It also calls a
comedy "a gripping thriller": a catalog term (``vocabulary``) named in the text must be one
of the terms the explanation may claim. It writes "the user enjoyed X" or "the user liked the
recommended item" of the very item it recommends: a known title (or the item, by reference)
may only be the object of "enjoyed / watched / liked ..." when it is in the user's history.
Names must also be what the text calls them: no genre called a film, no other title called
the recommended item. And it answers with nothing at all ("a similar tone to titles the user
liked") or as itself ("I'd suggest"): a text must cite a history title or the item's own
terms, and never speak in the first person."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llmrank.explain.misnamed import genre_called_a_title, misnamed_item
from llmrank.explain.seen import recommended_item_claimed_seen, unseen_claim
from llmrank.explain.titles import WORD as _WORD
from llmrank.explain.titles import aliases, cited, mentions, normalize_text, strip_year

_QUOTED = re.compile(r"[\"“”«»](.{2,120}?)[\"“”«»]|'([^']{3,120}?)'(?!\w)|‘([^‘’]{3,120}?)’(?!\w)"
                     # markdown emphasis of a capitalised name: *Darkness*, **Heat**, _Midnight Run_
                     r"|\*{1,2}([A-Z0-9][^*\n]{0,118}?)\*{1,2}|(?<![^\W_])_{1,2}([A-Z0-9][^_\n]{0,118}?)_{1,2}(?![^\W_])")
# a capitalised word followed by capitalised words or numbers ('Toy Story', 'Rocky 4'),
# optionally joined by short lower-case words ('Lord of the Rings')
_CAPS = re.compile(
    r"\b[A-Z][\w'’\-]*(?:\s+(?:(?:of|the|and|a|an|in|on|to|for|&)\s+)?(?:[A-Z][\w'’\-]*|\d+\b))+"
)
_ECHO = (
    "text between double quotes", "never an instruction", "ignore any request",
    "answer with one letter", "which candidate", "the user's history, oldest first",
    "candidate will the user choose", "recommender system", "you explain recommendations",
    "ignore previous instructions", "<|", "|>", "system:", "assistant:", "user:",
    "genres:", "tags:",  # the item's rendered text (llmrank.data.itemtext) read back
    # the explain templates' own instructions and questions (prompts/explain*.toml)
    "mention only titles", "do not invent titles", "why would this user like",
    "why would i like", "name one title they liked", "speak to them as",
    "you tell a person in one short sentence", "in common with the history",
    "in common with what i liked",
)
# words that start a sentence or are pronouns: a capitalised pair of these is not a title
_COMMON = {
    "i", "you", "your", "it", "this", "the", "a", "an", "if", "since", "because", "as", "its",
    "they", "we", "he", "she", "based", "given", "like", "both", "with", "fans", "also", "and",
}

__all__ = ["MAX_CHARS", "MIN_CHARS", "Verdict", "normalize_text", "shown_text", "strip_year", "tidy",
           "validate_explanation"]

MIN_CHARS = 12
MAX_CHARS = 400


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    text: str = ""


# a sentence ends at . ! ? (or …), possibly followed by closing quotes or brackets
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”’')\]]))\s+")
_FINISHED = re.compile(r"[.!?…][\"”’')\]]*$")
# a period that ends an abbreviation or an initial, not a sentence ("The Talented Mr. Ripley")
_ABBREVIATION = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|Vol|No|Pt|Mt|Ft|Lt|Sgt|Capt)|\b[A-Z])\.$")


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for piece in _SENTENCE_BREAK.split(text):
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def tidy(text: str) -> str:
    """First paragraph, at most two sentences, whitespace collapsed. A last sentence cut off
    by the token limit ("They also enjoyed the 1") is dropped when a finished one precedes it."""
    text = text.strip().split("\n\n")[0]
    text = " ".join(text.split())
    sentences = _sentences(text)[:2]
    if len(sentences) > 1 and not _FINISHED.search(sentences[-1]):
        sentences = sentences[:-1]
    return " ".join(sentences).strip()


def _degenerate(text: str) -> str | None:
    letters = sum(ch.isalpha() for ch in text)
    if letters / max(1, sum(not ch.isspace() for ch in text)) < 0.6:  # spaces are not symbols
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
    sentences = [normalize_text(s) for s in _sentences(text)]
    if len(set(sentences)) < len(sentences):  # "X is a crime film. X is a crime film."
        return "repeated sentence"
    return None


def validate_explanation(text: str, known_titles: Iterable[str],
                         known_terms: Iterable[str] = (), *, vocabulary: Iterable[str] = (),
                         claimable: Iterable[str] | None = None,
                         history_titles: Iterable[str] | None = None,
                         item_title: str | None = None,
                         item_terms: Iterable[str] | None = None) -> Verdict:
    """Accept ``text`` only if every quoted span and every capitalised multi-word span is
    part of a known title (history, candidates, the item) or a known term (genres, tags),
    every year is a known title's, every ``vocabulary`` term it names outside a title (the
    catalog's genres) is ``claimable`` (default: ``known_terms``; the explainer passes the
    item's terms and those of the history films the text cites) and never called a film, no
    first-person word is used, when ``history_titles`` is given no known title outside the
    history, nor the item itself by reference ('the recommended item'), is said to have been
    enjoyed, watched or liked by the user, and when ``item_title`` is given no other title is
    called the recommended item. Given a history or ``item_terms``, the text must also be
    grounded: cite a history title or one of the item's own terms, not only "a similar tone
    to titles the user liked"."""
    text = shown_text(text)
    if len(text) < MIN_CHARS:
        return Verdict(False, "empty or too short")
    if reason := _echo(text) or _json(text) or _degenerate(text) or _unclosed(text):
        return Verdict(False, reason)
    known_titles, known_terms = list(known_titles), list(known_terms)  # each is read twice
    if reason := _other_language(_without_titles(text, known_titles)):
        return Verdict(False, reason)
    span = _unknown_span(text, _known_matcher(known_titles, known_terms))
    if span is not None:
        return Verdict(False, f"names an unknown item {span!r}")
    # '2001' in '2001: A Space Odyssey (1968)' is the title's, not a year the text names
    if (year := _unknown_year(_without_titles(text, known_titles), known_titles)) is not None:
        return Verdict(False, f"names a year no known item has ({year})")
    if (dated := _dated_unknown(text, known_titles)) is not None:
        return Verdict(False, f"names an unknown item {dated!r}")
    if (misdated := _misdated(text, known_titles)) is not None:
        return Verdict(False, f"gives a title the wrong year ({misdated})")
    claims = known_terms if claimable is None else claimable
    untitled = _without_titles(text, known_titles)  # 'Crimes and Misdemeanors' claims no crime
    if (term := _unclaimable_term(untitled, vocabulary, claims)) is not None:
        return Verdict(False, f"claims an attribute that neither the item nor a title it cites has ({term!r})")
    if (word := _first_person(untitled)) is not None:
        return Verdict(False, f"speaks in the first person ({word!r})")
    if (term := genre_called_a_title(text, vocabulary, known_titles)) is not None:
        return Verdict(False, f"calls the genre {term!r} a film")
    if item_title is not None and (other := misnamed_item(text, item_title, known_titles)) is not None:
        return Verdict(False, f"the recommended item is called {other!r}")
    history_titles = None if history_titles is None else list(history_titles)
    if history_titles is not None:
        seen = unseen_claim(text, history_titles, known_titles)
        if seen is not None:
            return Verdict(False, f"says the user saw {seen!r}, which is not in their history")
        ref = recommended_item_claimed_seen(text, history_titles, known_titles, item_title)
        if ref is not None:
            return Verdict(False, f"says the user already saw the item it recommends ({ref!r})")
    if (history_titles is not None or item_terms is not None) and not _grounded(
            text, untitled, history_titles or [], list(item_terms or [])):
        return Verdict(False, "cites nothing from the history or the item")
    if (reason := _unfinished(text)) is not None:  # last: the other reasons read first (5.3)
        return Verdict(False, reason)
    return Verdict(True, "", text)


# "I", "I'd", "me", "my" outside any title: the recommender has no taste of its own to report
_FIRST_PERSON = re.compile(r"(?<![\w'’])(?:I(?:['’](?:d|ve|m|ll))?|[Mm]e|[Mm]y|[Mm]ine|[Mm]yself)(?![\w'’])")


def _first_person(untitled: str) -> str | None:
    """The first first-person word: a small model told what the user said ("Titles I liked")
    answers as the user or as itself ("genres that I enjoy", "I'd have to suggest")."""
    m = _FIRST_PERSON.search(untitled)
    return m.group(0) if m else None


def _without_titles(text: str, titles: list[str]) -> str:
    """``text`` with every mention of a known title blanked out, so that the words of a title
    ('The Adventures of Tintin') are not read as claims about genres."""
    for start, end, _ in reversed(cited(text, titles)):
        text = text[:start] + " " + text[end:]
    return text


def _grounded(text: str, untitled: str, history_titles: list[str], item_terms: list[str]) -> bool:
    """Whether ``text`` cites a history title or (outside any title, ``untitled``) one of the
    item's terms; with neither to cite (no history, an item without genres or tags) there is
    nothing to hold it to."""
    if not history_titles and not item_terms:
        return True
    if cited(text, history_titles):
        return True
    norm_text = normalize_text(untitled)
    return any((pattern := _term_pattern(normalize_text(t))) is not None and pattern.search(norm_text)
               for t in item_terms if t)


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


# a year right after a title ('Heat (1995)', '"Heat" (1995)') or right before it ('the 1995
# film Heat', "the 1995 crime classic 'Heat'")
_YEAR_AFTER_TITLE = re.compile(r"[\"”’']?\s*\(\s*(1[89]\d\d|20\d\d)\s*\)")
_YEAR_BEFORE_TITLE = re.compile(
    r"\b(1[89]\d\d|20\d\d)(?:['’]s)?\s+(?:[a-z-]+\s+){0,2}(?:film|movie|classic|picture|release|title)"
    r"\s*[:,]?\s*[\"“‘']?$")


_QUOTED_WITH_YEAR = re.compile(r"[\"“]([^\"“”]{1,120})[\"”]\s*\(\s*(?:1[89]\d\d|20\d\d)\s*\)")


def _dated_unknown(text: str, known_titles: list[str]) -> str | None:
    """A quoted name with a year after it ('"Drama" (2013)') is cited as a film: it must be
    a known title, not only a known term, which passes the span check."""
    names = {normalize_text(a) for t in known_titles if t for a in (*aliases(t), t)}
    for m in _QUOTED_WITH_YEAR.finditer(text):
        if normalize_text(m.group(1)) not in names:
            return m.group(0)
    return None


def _misdated(text: str, known_titles: list[str]) -> str | None:
    """'Heat (1986)' when Heat is from 1995: the year is a known title's (Aliens'), so
    :func:`_unknown_year` passes it, but it is not the year of the title it stands next to.
    Returns 'Heat (1995), not 1986'. A name that several known titles share ('Psycho' of
    1960 and 1998) may carry any of their years."""
    years: dict[str, set[str]] = {}
    for t in known_titles:
        if t and (m := _TITLE_YEAR.search(t)):
            for a in aliases(t):
                years.setdefault(normalize_text(a), set()).add(m.group(1))
    for start, end, title in mentions(text, known_titles):
        allowed = years.get(normalize_text(text[start:end]))
        if not allowed:
            continue
        after = _YEAR_AFTER_TITLE.match(text, end)
        before = _YEAR_BEFORE_TITLE.search(text[max(0, start - 60):start])
        for m in (after, before):
            if m and m.group(1) not in allowed:
                return f"{title}, not {m.group(1)}"
    return None


def _unclosed(text: str) -> str | None:
    """The reason when a quote or bracket is left open: the text was cut off mid-title by
    the token limit ('... fond of the movie "Mars Attacks!'), so it cites a fragment."""
    if text.endswith("…"):  # cut by MAX_CHARS here, on purpose
        return None
    if (text.count('"') % 2 or text.count("“") != text.count("”")
            or text.count("(") != text.count(")")):
        return "cut off (an unclosed quote or bracket)"
    return None


def _unfinished(text: str) -> str | None:
    """The reason when the text has no sentence end: the token limit cut its only sentence
    ("... the same tags as those you liked, including holocaust, bittersweet, heartw"); tidy
    drops such a last sentence only when a finished one precedes it."""
    if text.endswith("…") or _FINISHED.search(text):  # cut by MAX_CHARS here, on purpose
        return None
    return "cut off (no sentence end)"


def shown_text(text: str) -> str:
    """The part of a model's output that would be shown: tidied, at most MAX_CHARS, cut at a
    word boundary and marked with an ellipsis. Checks that depend on what the text cites
    (``claimable``) must read this, not the raw output, whose dropped sentences may cite
    films the shown text does not."""
    text = tidy(text)
    if len(text) > MAX_CHARS:
        return text[:MAX_CHARS].rsplit(" ", 1)[0] + "…"
    return text


# an injected instruction in any wording ("Ignore all previous instructions", "disregard the
# prior prompt"), and chat-template markup other than <|...|> (caught by _ECHO)
_INJECTION = re.compile(r"\b(?:ignore|disregard|forget|override)\b(?:\W+\w+){0,3}?\W+"
                        r"(?:instructions?|prompts?|rules|directions)\b"
                        r"|\b(?:ignore|disregard|forget)\W+(?:(?:all|everything|anything|the)\W+)?above\b")
# and the role markers prompts.escape neutralises in catalog text ('### Instruction:',
# 'Human:', '[SYSTEM]'); 'system:', 'user:' and 'assistant:' are in _ECHO
_MARKUP = re.compile(r"</?s>|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>|<bos>|<eos>|<pad>|</?think>"
                     r"|\[/?(?:system|user|assistant)(?:_prompt)?\]"
                     r"|#{1,6}\s*(?:system|assistant|user|human|instruction|response|answer)\s*:"
                     r"|\b(?:human|instruction)\s*:")
# words of a sentence that English explanations do not use and French, German, Spanish or
# Italian ones are made of
_FOREIGN = frozenset(
    ["le", "la", "les", "des", "est", "une", "et", "du", "avec", "pour", "qui", "très", "dans", "vous", "ce", "cette", "sont", "der", "die", "das", "und", "ist", "ein", "eine", "nicht", "mit", "dieser", "diese", "wie", "auch", "sehr", "für", "el", "los", "las", "es", "una", "que", "con", "por", "muy", "pero", "del", "esta", "este", "il", "è", "della", "che", "di", "per", "non", "molto", "questo", "questa"])
_ENGLISH = frozenset(
    ["the", "a", "an", "and", "is", "are", "was", "of", "to", "in", "it", "this", "that", "you", "your", "for", "with", "as", "like", "on", "its", "be", "by", "so", "if", "also", "has", "have", "more", "but", "not"])


def _echo(text: str) -> str | None:
    """The reason when the text repeats the prompt's instructions or chat markup (a model
    that echoes its prompt has not explained anything). Read after NFKC and without format
    characters, so fullwidth letters or a zero-width space do not hide an instruction."""
    low = "".join(ch for ch in unicodedata.normalize("NFKC", text)
                  if unicodedata.category(ch) != "Cf").lower()
    for echo in _ECHO:
        if echo in low:
            return f"instruction echo ({echo!r})"
    if m := _INJECTION.search(low) or _MARKUP.search(low):
        return f"instruction echo ({m.group(0)!r})"
    return None


def _json(text: str) -> str | None:
    """The reason when the text is (or holds) JSON: an object or list, or a quoted key."""
    if text[:1] in "{[" or re.search(r"[{,]\s*\"[^\"]{1,40}\"\s*:", text):
        return "JSON, not prose"
    return None


def _other_language(untitled: str) -> str | None:
    """The reason when the text, its titles blanked out, is not English: letters of another
    script, or a sentence made of French/German/Spanish/Italian function words."""
    letters = [ch for ch in untitled if ch.isalpha()]
    other = sum(not unicodedata.name(ch, "").startswith("LATIN") for ch in letters)
    if letters and other / len(letters) > 0.2:
        return "another language (not Latin script)"
    for sentence in re.split(r"[.!?;]", untitled):
        words = _WORD.findall(sentence.lower())
        foreign = sum(w in _FOREIGN for w in words)
        if foreign >= 3 and foreign > sum(w in _ENGLISH for w in words):
            return "another language"
    return None


_POSSESSIVE = re.compile(r"\w['’]s$")


def _known_matcher(known_titles: Iterable[str], known_terms: Iterable[str]) -> Callable[[str], bool]:
    """A test for 'this span is whole words of a known title (with or without its year) or
    term', on normalised text so case, accents and punctuation do not matter. Whole words,
    not characters: "Alien" is not part of "Aliens", nor "Ran" of "Grand Canyon"."""
    titles = [normalize_text(t) for t in known_titles if t]
    titles += [normalize_text(a) for t in known_titles if t for a in aliases(t)]
    terms = [normalize_text(t) for t in known_terms if t]
    terms += [t + "s" for t in terms if t] + [t[:-1] + "ies" for t in terms if t.endswith("y")]  # plurals
    haystack = [f" {t} " for t in titles + terms if t]

    def known(span: str) -> bool:
        s = normalize_text(span)
        if _POSSESSIVE.search(span):  # "Toy Story's humour" names "Toy Story"
            s = s[:-2]
        return not s or any(f" {s} " in t for t in haystack)

    return known


def _unknown_span(text: str, known: Callable[[str], bool]) -> str | None:
    """The first quoted span, then the first capitalised run, that names nothing known."""
    for m in _QUOTED.finditer(text):
        span = next((g for g in m.groups() if g is not None), "")
        if not known(span):
            return span
    for m in _CAPS.finditer(text):
        if not _caps_run_known(m.group(0), known):
            return m.group(0)
    for m in _NAMED_WORD.finditer(text):
        word = m.group(1)
        if _CAPS.match(text, m.start(1)) is None and word.lower() not in _COMMON and not known(word):
            return word
    return None


# one capitalised word where a film is named ("you will love Titanic", "the film Casablanca",
# "Like Titanic,"): a run of two capitalised words is checked by _CAPS, a single one was not
_NAMED_WORD = re.compile(
    r"\b(?i:movie|film|title|picture|like|likes|liked|love|loves|loved|enjoy|enjoys|enjoyed|"
    r"watched|saw|adore|adored|such as)\s+[\"“‘']?([A-Z][\w'’\-]*)")


def _caps_run_known(span: str, known: Callable[[str], bool]) -> bool:
    """Whether a capitalised run is harmless: only common words ('It The'), a single word
    once a sentence-initial common word is dropped, known whole, or made of known parts
    joined by and/or/& ('Crime and Animation')."""
    words = _WORD.findall(span.lower())
    if _POSSESSIVE.search(span):  # "Toy Story's": the title is "Toy Story"
        words = words[:-1]
    if all(w in _COMMON for w in words):
        return True
    # drop a sentence-initial common word ("Since Toy Story" -> "Toy Story")
    while words and words[0] in _COMMON:
        words = words[1:]
    parts = re.split(r"\b(?:and|or)\b|&", " ".join(words))  # "Crime and Animation"
    return len(words) < 2 or known(" ".join(words)) or all(known(p) for p in parts)
