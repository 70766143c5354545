"""Where text may be cut: never inside a user-perceived character (an accent torn from its
letter, half a flag, an emoji sequence split at a zero-width joiner). Item text and escaped
prompt data are both cut to length; both use this."""

from __future__ import annotations

import re
import unicodedata

_ZWJ = "\u200d"
_VS = re.compile(r"[\ufe00-\ufe0f\U0001f3fb-\U0001f3ff]")  # variation selectors, skin tones


def grapheme_start(text: str, end: int) -> int:
    """The largest cut position <= ``end`` that does not split a user-perceived character: not
    before a combining mark, a variation selector or skin tone, not next to a zero-width joiner,
    not inside a regional-indicator pair (a flag)."""
    while 0 < end < len(text):
        nxt, prev = text[end], text[end - 1]
        if unicodedata.combining(nxt) or unicodedata.category(nxt) in ("Mn", "Mc", "Me") \
                or _VS.match(nxt) or nxt == _ZWJ or prev == _ZWJ:
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
