"""Where text may be cut: never inside a user-perceived character (an accent torn from its
letter, half a flag, an emoji sequence split at a zero-width joiner). Item text and escaped
prompt data are both cut to length; both use this."""

from __future__ import annotations

import re
import unicodedata

_ZWJ = "\u200d"
# variation selectors, skin tones, and the tag characters of subdivision flags (England, Scotland)
_VS = re.compile(r"[\ufe00-\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]")


def grapheme_start(text: str, end: int) -> int:
    """The largest cut position <= ``end`` that does not split a user-perceived character: not
    before a combining mark, a variation selector or skin tone, not next to a zero-width joiner,
    not inside a regional-indicator pair (a flag)."""
    while 0 < end < len(text):
        nxt, prev = text[end], text[end - 1]
        if unicodedata.combining(nxt) or unicodedata.category(nxt) in ("Mn", "Mc", "Me") \
                or _VS.match(nxt) or nxt == _ZWJ or prev == _ZWJ or _hangul_joins(prev, nxt):
            end -= 1
        elif _is_regional(nxt) and _is_regional(prev):
            run = end  # pairs count from the start of the run of indicators
            while run > 0 and _is_regional(text[run - 1]):
                run -= 1
            if (end - run) % 2 == 0:
                break
            end -= 1
        else:
            break
    return end


def _is_regional(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _hangul(ch: str) -> str:
    """The Hangul syllable type of ``ch`` (UAX #29): 'L', 'V', 'T', 'LV', 'LVT', or ''."""
    cp = ord(ch)
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return "L"
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return "V"
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return "T"
    if 0xAC00 <= cp <= 0xD7A3:
        return "LV" if (cp - 0xAC00) % 28 == 0 else "LVT"
    return ""


def _hangul_joins(prev: str, nxt: str) -> bool:
    """True when ``prev`` and ``nxt`` belong to one Hangul syllable (rules GB6-GB8)."""
    a, b = _hangul(prev), _hangul(nxt)
    if not (a and b):
        return False
    if a == "L":
        return b != "T"
    return b == "T" or (b == "V" and a in ("LV", "V"))
