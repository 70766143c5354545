"""Neutralise untrusted text (item titles, descriptions, user free text) before it enters a
prompt, so that catalog data can never pose as prompt structure.

Every prompt wraps data in straight double quotes on one line. Inside data we therefore
remove what could close the quotes, start a new line, fake a chat role, or fake the answer
slot: the text keeps its meaning for the model, but loses its power to be an instruction.
The system prompt also says that quoted text is data (defence in depth)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from llmrank.textcut import grapheme_start

# chat-template special tokens of common model families, and generic <|...|> markers
_SPECIAL = re.compile(
    r"<\|[^|<>]{0,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<start_of_turn>|<end_of_turn>"
    r"|<bos>|<eos>|<pad>|\[/?(?:SYSTEM|USER|ASSISTANT)(?:_PROMPT)?\]",
    re.IGNORECASE,
)
# "System:", "### Assistant:", "Answer:" at any position: a role or answer-slot marker. NFKC
# already folds fullwidth and small colons to ":"; these look-alikes survive it.
_ROLE = re.compile(
    r"(?:#{1,6}\s*)?\b(system|assistant|user|human|ai|answer|instruction|response)"
    r"\s*[:\u02f8\u2236\ua789]",
    re.IGNORECASE,
)
# characters that could close our delimiters or open markup; the double-quote look-alikes
# are those NFKC leaves alone (it folds U+FF02 to '"' and U+2033 to two U+2032)
_TRANSLATE = str.maketrans({
    '"': "'", "“": "'", "”": "'", "„": "'", "‟": "'", "«": "'", "»": "'", "`": "'",
    "″": "'", "′": "'", "‶": "'", "‵": "'", "〃": "'", "ʺ": "'", "״": "'", "＂": "'",
    "<": "‹", ">": "›", "{": "(", "}": ")", "\\": "/",
})
# Cyrillic and Greek letters drawn like Latin ones; NFKC keeps them, a reader does not see
# the difference. Used only to *find* markers: the text itself keeps its letters.
_HOMOGLYPHS = str.maketrans(
    "АВЕЅІЈКМНОРСТХУаеоѕіјрсухһԁԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧοινρ",
    "abesijkmhopctxyaeosijpcyxhdqwabezhikmnoptyxoivp",
)
_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _normalise(text: str) -> str:
    """Fold compatibility look-alikes (fullwidth letters and colons, ligatures) with NFKC and
    delete every format character (Unicode category Cf: zero-width spaces and joiners, word
    joiner, soft hyphen, bidi controls, BOM), so the filters below see what the model reads.
    Plain ASCII is returned as is and composed accents ("Amélie") survive NFKC. Kept as they
    are: "other number" characters (category No: ½, ³), since folding changes the title ("8½"
    would read "81⁄2"), and "…", which marks text this function cut (escaping twice must not
    change a prompt); none of them can pose as a quote, colon or letter."""
    if text.isascii():
        return text
    out: list[str] = []
    run: list[str] = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cf":
            continue
        if cat == "No" or ch == "…":
            out.append(unicodedata.normalize("NFKC", "".join(run)))
            out.append(ch)
            run.clear()
        else:
            run.append(ch)
    out.append(unicodedata.normalize("NFKC", "".join(run)))
    return "".join(out)


def escape_data(text: str, extra_specials: Iterable[str] = (), limit: int | None = 600) -> str:
    """Return ``text`` safe to place inside double quotes of a prompt: one line, no quote or
    tag characters, no chat-role or answer markers, no special tokens of the tokenizer
    (``extra_specials``), at most ``limit`` characters."""
    text = _CONTROL.sub(" ", _normalise(str(text)))
    for tok in sorted(set(extra_specials), key=len, reverse=True):
        if tok:
            text = text.replace(tok, " ")
    text = _SPECIAL.sub(" ", text)
    text = text.translate(_TRANSLATE)
    text = _neutralise_markers(text)
    text = _WS.sub(" ", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: grapheme_start(text, limit - 1)].rstrip() + "…"
    return text


def _neutralise_markers(text: str) -> str:
    """Turn "Answer:"-like markers into "Answer -", also when the word is disguised with
    combining marks ("A\u0307nswer", "Answ\u0334er"), accented letters or Cyrillic/Greek
    look-alikes. The search runs on a skeleton (base letters only, marks dropped) whose
    characters map back to positions in ``text``, so the marker is replaced as in ASCII text
    (the word kept, "###" and the colon gone) and the rest of ``text`` is kept as it is."""
    if text.isascii():
        return _ROLE.sub(lambda m: m.group(1) + " -", text)
    skeleton: list[str] = []
    origin: list[int] = []  # skeleton position -> position in text
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Mn":
            continue
        base = unicodedata.normalize("NFD", ch)[0].translate(_HOMOGLYPHS)
        skeleton.append(base if base.isascii() else ch)
        origin.append(i)
    out: list[str] = []
    done = 0
    for m in _ROLE.finditer("".join(skeleton)):
        out.append(text[done : origin[m.start()]])
        out.append(text[origin[m.start(1)] : origin[m.end(1) - 1] + 1] + " -")
        done = origin[m.end() - 1] + 1
    out.append(text[done:])
    return "".join(out)


def escape_tree(value: object, extra_specials: Iterable[str] = ()) -> object:
    """Apply :func:`escape_data` to every string inside lists, tuples and mappings."""
    specials = tuple(extra_specials)
    if isinstance(value, str):
        return escape_data(value, specials)
    if isinstance(value, dict):
        return {k: escape_tree(v, specials) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_tree(v, specials) for v in value]
    return value
