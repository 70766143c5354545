"""One rendering of an item as text, shared by the embedder and every prompt, so that what
the retriever embeds and what the LLM reads never drift apart."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from llmrank.records import Item
from llmrank.textcut import grapheme_start

_WS = re.compile(r"\s+")
# characters that could fake prompt structure: control chars, our own delimiters
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# lone surrogates (from JSON "\\ud83d" escapes) cannot be encoded to UTF-8: every tokenizer fails
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class TextLimits:
    """Length limits in characters (cheap, tokenizer-free, deterministic)."""

    title: int = 120
    genres: int = 6
    tags: int = 8
    description: int = 300
    attributes: int = 4
    total: int = 600


DEFAULT_LIMITS = TextLimits()


def clean(text: str, limit: int | None = None) -> str:
    """Collapse whitespace, drop control characters, truncate at a word boundary."""
    text = _WS.sub(" ", _CONTROL.sub(" ", _SURROGATE.sub("", text))).strip()
    if limit is not None and len(text) > limit:
        cut = text[: grapheme_start(text, max(0, limit - 1))]
        space = cut.rfind(" ")
        if space > limit // 2:
            cut = cut[:space]
        text = cut.rstrip(" ,;:") + "…"
    return text


def _text(value: Any) -> str:
    """A catalog value as text: None and NaN are absent (not 'None', 'nan'), a list is its
    non-empty elements joined by ', ' (not "['a', 'b']"), anything else its str()."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(t for t in (_text(v) for v in value) if t)
    return value if isinstance(value, str) else str(value)


def _strings(values: Any, limit: int, each: int) -> list[str]:
    """Up to ``limit`` non-empty cleaned strings of a genres or tags field (one bare string
    is one value, not a sequence of characters)."""
    if isinstance(values, str):
        values = (values,)
    out = [t for t in (clean(_text(v), each) for v in values or ()) if t]
    return out[:limit]


def _year(value: Any) -> int | None:
    """The year as an int; a float year (1995.0, from a table with gaps) or a digit string
    counts, NaN and anything else does not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        return int(value.strip()) if value.strip().isdecimal() else None  # not isdigit: int("²") fails
    return value if isinstance(value, int) else None


def item_title(item: Item, limits: TextLimits = DEFAULT_LIMITS) -> str:
    """'Title (1995)', the short form used in histories."""
    title = clean(_text(item.title), limits.title) or clean(_text(item.item_id), limits.title)
    year = _year(item.year)
    return f"{title} ({year})" if year else title


def item_title_genres(item: Item, limits: TextLimits = DEFAULT_LIMITS) -> str:
    """'Title (1995). Genres: a, b': the compact form that still tells a small model, which
    cannot know a film from its title, what kind of item it is."""
    title = item_title(item, limits)
    genres = _genres(item, limits)
    return clean(f"{title}. {genres}", limits.total) if genres else title


def _genres(item: Item, limits: TextLimits) -> str:
    genres = _strings(item.genres, limits.genres, 40)
    return "Genres: " + ", ".join(genres) if genres else ""


def render_item(item: Item, limits: TextLimits = DEFAULT_LIMITS, *, with_attributes: bool = True) -> str:
    """'Title (1995). Genres: a, b. Tags: x, y. Description. key: value' within limits."""
    parts = [item_title(item, limits)]
    parts.append(_genres(item, limits))
    tags = _strings(item.tags, limits.tags, 40)
    if tags:
        parts.append("Tags: " + ", ".join(tags))
    parts.append(clean(_text(item.description), limits.description))
    if with_attributes and item.attributes:
        # identifiers are skipped before counting, so they do not take the meaningful ones' slots
        pairs = ((clean(_text(k), 30), clean(_text(v), 60)) for k, v in item.attributes.items()
                 if not _is_identifier_attribute(_text(k)))
        shown = [f"{k}: {v}" for k, v in pairs if k and v][: limits.attributes]
        if shown:
            parts.append("; ".join(shown))
    text = ". ".join(p.rstrip(".") for p in parts if p)
    return clean(text, limits.total)


def _is_identifier_attribute(key: str) -> bool:
    """URLs and external ids carry no meaning for a language model."""
    k = key.lower()
    return k.endswith(("_id", "_url", "url")) or k in {"release_date"}
