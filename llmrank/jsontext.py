"""JSON text that can always be written as UTF-8: non-ASCII text as it is, and the whole
document \\u-escaped when it holds text UTF-8 cannot encode (a lone UTF-16 surrogate, half an
emoji, which a free-form field such as an impression's context may hold). Escaped text reads
back as the same string; writing it raw raised UnicodeEncodeError (an export or a --json
command stopped)."""

from __future__ import annotations

import json
from typing import Any


def dumps(obj: Any, *, indent: int | None = None) -> str:
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, indent=indent)
    return text
