"""The template sentence used when the model's explanation is rejected or explanations are
generated without a model: built only from facts (shared genres/tags, history titles)."""

from __future__ import annotations

from collections.abc import Sequence

from llmrank.data.itemtext import item_title
from llmrank.records import Item


def shared_terms(item: Item, history: Sequence[Item], limit: int = 3) -> list[str]:
    """Genres and tags of ``item`` that also occur in the history, most frequent first."""
    counts: dict[str, int] = {}
    for h in history:
        for term in {*h.genres, *h.tags}:
            counts[term.lower()] = counts.get(term.lower(), 0) + 1
    mine = list(dict.fromkeys([*item.genres, *item.tags]))
    found = [t for t in mine if t.lower() in counts]
    found.sort(key=lambda t: -counts[t.lower()])
    return found[:limit]


def supporting_history(item: Item, history: Sequence[Item], limit: int = 2) -> list[Item]:
    """The most recent history items sharing a genre or tag with ``item``."""
    mine = {t.lower() for t in (*item.genres, *item.tags)}
    out = [h for h in reversed(history) if mine & {t.lower() for t in (*h.genres, *h.tags)}]
    return out[:limit]


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def fallback_explanation(item: Item, history: Sequence[Item], query: str | None = None) -> str:
    """'Because you watched X and Y: it is also Drama and Romance.' and simpler variants."""
    shared = shared_terms(item, history)
    support = supporting_history(item, history)
    title = item_title(item)
    if shared and support:
        names = _join([f'"{item_title(h)}"' for h in support])
        return f'Because you liked {names}: "{title}" is also {_join(shared)}.'
    if query:
        return f'"{title}" matches your request.'
    if history:
        return f'"{title}" is close to what you watched recently.'
    if item.genres:
        return f'"{title}" is a {_join(list(item.genres[:2]))} title you have not seen yet.'
    return f'"{title}" is a candidate that matches your request.'
