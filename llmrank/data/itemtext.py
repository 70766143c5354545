"""One rendering of an item as text, shared by the embedder and every prompt, so that what
the retriever embeds and what the LLM reads never drift apart."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmrank.records import Item

_WS = re.compile(r"\s+")
# characters that could fake prompt structure: control chars, our own delimiters
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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
    text = _WS.sub(" ", _CONTROL.sub(" ", text)).strip()
    if limit is not None and len(text) > limit:
        cut = text[: max(0, limit - 1)]
        space = cut.rfind(" ")
        if space > limit // 2:
            cut = cut[:space]
        text = cut.rstrip(" ,;:") + "…"
    return text


def item_title(item: Item, limits: TextLimits = DEFAULT_LIMITS) -> str:
    """'Title (1995)', the short form used in histories."""
    title = clean(item.title or item.item_id, limits.title)
    return f"{title} ({item.year})" if item.year else title


def item_title_genres(item: Item, limits: TextLimits = DEFAULT_LIMITS) -> str:
    """'Title (1995). Genres: a, b': the compact form that still tells a small model, which
    cannot know a film from its title, what kind of item it is."""
    title = item_title(item, limits)
    return clean(f"{title}. {_genres(item, limits)}", limits.total) if item.genres else title


def _genres(item: Item, limits: TextLimits) -> str:
    return "Genres: " + ", ".join(clean(g, 40) for g in item.genres[: limits.genres])


def render_item(item: Item, limits: TextLimits = DEFAULT_LIMITS, *, with_attributes: bool = True) -> str:
    """'Title (1995). Genres: a, b. Tags: x, y. Description. key: value' within limits."""
    parts = [item_title(item, limits)]
    if item.genres:
        parts.append(_genres(item, limits))
    if item.tags:
        parts.append("Tags: " + ", ".join(clean(t, 40) for t in item.tags[: limits.tags]))
    if item.description:
        parts.append(clean(item.description, limits.description))
    if with_attributes and item.attributes:
        shown = [
            f"{clean(k, 30)}: {clean(str(v), 60)}"
            for k, v in list(item.attributes.items())[: limits.attributes]
            if not _is_identifier_attribute(k)
        ]
        if shown:
            parts.append("; ".join(shown))
    text = ". ".join(p.rstrip(".") for p in parts if p)
    return clean(text, limits.total)


def _is_identifier_attribute(key: str) -> bool:
    """URLs and external ids carry no meaning for a language model."""
    k = key.lower()
    return k.endswith(("_id", "_url", "url")) or k in {"release_date"}
