"""The seen-claim check: an explanation may say the user enjoyed, watched or liked only titles
in their history. A small model writes "The user enjoyed the movie X" of the very item it
recommends (a quarter of SmolLM2-135M's explanations, eval/RESULTS.md section 5.3), which is
false and worse than the template sentence."""

from __future__ import annotations

import re

from llmrank.explain.titles import WORD, mentions, normalize_text, strip_year

# "you enjoyed / the user watched / likes / is fond of / you're a fan of" X: X is said to be in
# the user's past ("you will love Ronin" is the recommendation itself)
_PAST = re.compile(r"\b(?:enjoyed|liked|loved|adored|watched|rewatched|saw|seen|"
                   r"rated|appreciated|(?:(?:were|was|are|is) |['’]re )(?:particularly |very |quite )?fond of|"
                   r"(?:(?:were|was|are|is) |['’]re )(?:a |an )?(?:big |huge )?fans? of)\b", re.I)
# the present "you enjoy / the user likes" X says the same ("You enjoy the movie Ronin and its
# car chases"), unless a reason follows: "You like Klute because it shares drama and mystery
# with the titles you liked" is how a model phrases the prediction (eval/RESULTS.md 5.3)
_PRESENT = r"(?:(?<=\byou )|(?<=\bthey ))(?:enjoy|like|love)\b|\b(?:enjoys|likes|loves|adores)\b"
_VERB = re.compile(rf"(?P<present>{_PRESENT})|{_PAST.pattern}", re.I)
_VERB_THEN_COLON = re.compile(rf"(?:{_PAST.pattern})\s*$", re.I)
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
_MAX_BETWEEN = 8  # words such as "the recommended item, particularly the 1999 film"
_HELD = "\x00"  # what a title mention is masked with
# how a text refers to the item it explains without naming it
_ITEM_REFERENCE = re.compile(r"\b(?:the|this) (?:recommended|suggested) (?:item|movie|film|title|show|book|product)\b"
                             r"|\bthis (?:item|movie|film|title)\b", re.I)


def unseen_claim(text: str, history_titles: list[str], known_titles: list[str]) -> str | None:
    """The first known title outside the history that ``text`` names as the object of a
    past-experience verb ('The user enjoyed the documentary "Chasing Aurora"' for the very
    item being recommended). A title counts as the object when only a few words, other
    titles and list joiners stand between the verb and it."""
    held = _held(history_titles)
    found = mentions(text, [*history_titles, *known_titles])
    masked = _masked(text, found)
    for start, end, title in found:
        if normalize_text(strip_year(title)) in held:
            continue
        first = text[start]
        if not (first.isupper() or first.isdigit() or text[start - 1:start] in ("\"", "'", "“", "‘", "«")):
            continue  # 'you liked it' is not the film 'It'
        if _is_object_of_past_verb(masked, start, end):
            return title
    return None


def recommended_item_claimed_seen(text: str, history_titles: list[str], known_titles: list[str],
                                  item_title: str | None = None) -> str | None:
    """The first reference to the explained item ('the recommended item', 'this film') that
    ``text`` makes the object of a past-experience verb: "The user liked the recommended item
    because ..." says the user has already seen what is being recommended to them (over half
    of SmolLM2-135M's otherwise accepted explanations, eval/RESULTS.md section 5.3). None when
    ``item_title`` is in the history (an include-seen request), where that is true."""
    if item_title is not None and normalize_text(strip_year(item_title)) in _held(history_titles):
        return None
    masked = _masked(text, mentions(text, [*history_titles, *known_titles]))
    for m in _ITEM_REFERENCE.finditer(masked):
        if _is_object_of_past_verb(masked, m.start(), m.end()):
            return m.group(0)
    return None


def _held(history_titles: list[str]) -> set[str]:
    """The history's titles as compared: normalised, without the year."""
    return {normalize_text(strip_year(t)) for t in history_titles}


def _masked(text: str, found: list[tuple[int, int, str]]) -> str:
    """``text`` with each title mention replaced by a placeholder of the same length, so that
    offsets stay valid and a title's own words ('Heat and Dust') are not read as the sentence's."""
    for start, end, _ in found:
        text = text[:start] + _HELD * (end - start) + text[end:]
    return text


def _sentence_start(text: str, start: int) -> int:
    """Where the clause holding ``start`` begins: after . ! ? ; or a colon, except a colon
    that follows the verb ("The user liked: X" lists what was liked)."""
    pos = max(text.rfind(ch, 0, start) for ch in ".!?;")
    colon = text.rfind(":", 0, start)
    if colon > pos and not _VERB_THEN_COLON.search(text[:colon]):
        pos = colon
    return pos + 1


def _is_object_of_past_verb(text: str, start: int, end: int) -> bool:
    sentence_start = _sentence_start(text, start)
    prefix = text[sentence_start:start]
    verbs = list(_VERB.finditer(prefix))
    if not verbs or _NEGATED.search(prefix[:verbs[-1].start()]):
        return False
    after = WORD.findall(text[end:end + 40].lower())
    if after[:1] and re.fullmatch(r"1[89]\d\d|20\d\d", after[0]):  # 'Ronin (1998) because'
        after = after[1:]
    if verbs[-1].group("present") and after[:1] == ["because"]:
        return False
    between_text = prefix[verbs[-1].end():]
    between = WORD.findall(between_text.lower())
    words = [w for w in between if w not in _LIST_WORDS]
    if len(words) > _MAX_BETWEEN or any(w in _RESET for w in words):
        return False
    if after and after[0] in _CLAUSE_VERBS:  # "... Heat, and Ronin is just as tense"
        return False
    if re.search(_HELD + r"[\"'”’)\s]*,", between_text):
        # a title then a comma: a list ("Heat, Casino and Ronin"; "Heat, Ronin and Casino"),
        # or a new clause ("Since you loved Heat, Ronin brings ...")
        ends_list = bool(between) and between[-1] in _LIST_WORDS
        continues_list = text[end:].lstrip().startswith(",") or (after[:1] and after[0] in _LIST_WORDS)
        return ends_list or bool(continues_list)
    return True
