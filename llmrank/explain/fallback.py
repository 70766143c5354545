"""The template sentence used when the model's explanation is rejected or explanations are
generated without a model: built only from facts (shared genres/tags, history titles)."""

from __future__ import annotations

from collections.abc import Sequence

from llmrank.data.itemtext import item_title
from llmrank.prompts.escape import escape_data
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
    out = [h for h in reversed(history) if mine & _terms(h)]
    return out[:limit]


def _terms(item: Item) -> set[str]:
    return {t.lower() for t in (*item.genres, *item.tags)}


def _because(item: Item, history: Sequence[Item], limit: int = 3) -> tuple[list[Item], list[str]]:
    """The liked films to cite and the terms the item has in common with *each* of them:
    "Because you liked X and Y: Z is also T" says that X and Y are T, so a term one of them
    lacks must not be stated (nor a film cited that lacks a stated term). The most recent
    film sharing a term comes first; a second is cited only when it has every stated term."""
    support = supporting_history(item, history, limit=len(history))
    if not support:
        return [], []
    first = _terms(support[0])
    stated = [t for t in shared_terms(item, history, limit=len(item.genres) + len(item.tags))
              if t.lower() in first][:limit]
    wanted = {t.lower() for t in stated}
    cited = [support[0], *[h for h in support[1:] if wanted <= _terms(h)][:1]]
    return cited, stated


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _quoted(item: Item) -> str:
    """The item's title in double quotes, escaped as prompt data is: a quote, a newline or
    chat markup inside a catalog title cannot break out of the sentence."""
    return f'"{escape_data(item_title(item))}"'


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def fallback_explanation(item: Item, history: Sequence[Item], query: str | None = None) -> str:
    """'Because you liked "X" and "Y": "Z" is also Drama and Romance.' (X and Y both have
    every term named) and simpler variants; built only from the data, never claiming more."""
    cited, stated = _because(item, history)
    title = _quoted(item)
    if cited and stated:
        terms = [escape_data(t) for t in stated]  # tags are free text, like titles
        return f"Because you liked {_join([_quoted(h) for h in cited])}: {title} is also {_join(terms)}."
    if query:
        return f"{title} matches your request."
    if history:
        return f"{title} is close to what you watched recently."
    if item.genres:
        genres = [escape_data(g) for g in item.genres[:2]]
        return f"{title} is {_article(genres[0])} {_join(genres)} title."
    return f"{title} was picked for you."  # no request to match, no genre to name
