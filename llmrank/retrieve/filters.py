"""Turn ``llmrank.records.Filters`` into the keep-predicate a VectorIndex applies inside its
search. Attribute keys: ``genre``/``genres`` and ``tag``/``tags`` match any of the item's
values, ``year`` its year, anything else ``item.attributes[key]``; values compare
case-insensitively. Several keys must all match (AND); values of one key are alternatives
(OR)."""

from __future__ import annotations

from collections.abc import Mapping

from llmrank.index.base import KeepFn
from llmrank.records import Filters, Item

_MULTI = {"genre": "genres", "genres": "genres", "tag": "tags", "tags": "tags"}


def item_values(item: Item, key: str) -> set[str]:
    """The casefolded values of ``key`` on ``item`` (empty when it has none)."""
    field = _MULTI.get(key.lower())
    if field is not None:
        return {str(v).casefold() for v in getattr(item, field)}
    if key.lower() == "year":
        return {str(item.year)} if item.year is not None else set()
    value = item.attributes.get(key)
    return {str(value).casefold()} if value is not None else set()


def compile_filters(filters: Filters | None, items: Mapping[str, Item]) -> KeepFn | None:
    """A predicate over item ids, or None when ``filters`` keeps everything. Items unknown to
    ``items`` fail any attribute filter (nothing is known about them)."""
    if filters is None or filters.is_empty():
        return None
    allow = filters.allow
    deny = filters.deny
    wanted = {key: {str(v).casefold() for v in values}
              for key, values in filters.attributes.items()}

    def keep(item_id: str) -> bool:
        if allow is not None and item_id not in allow:
            return False
        if item_id in deny:
            return False
        if wanted:
            item = items.get(item_id)
            if item is None:
                return False
            for key, values in wanted.items():
                if not item_values(item, key) & values:
                    return False
        return True

    return keep
