"""Which column of a user's own table holds what: the contract of the generic loaders.

A mapping can be written in a config (``[data.mapping]``), given on the command line as
``user=uid,item=sku,timestamp=ts`` or as JSON, or guessed from common column names."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from llmrank.errors import ConfigError

TimestampUnit = Literal["auto", "s", "ms", "iso"]

# lower-cased column names that usually mean a field, most specific first
GUESSES: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "userid", "user", "uid", "reviewerid", "customer_id", "visitorid", "session_id"),
    "item": ("item_id", "itemid", "movieid", "parent_asin", "asin", "product_id", "productid", "book_id",
             "track_id", "sku", "iid", "item"),
    "timestamp": ("timestamp", "unixreviewtime", "time", "ts", "datetime", "date", "created_at"),
    "rating": ("rating", "overall", "score", "stars"),
    "title": ("title", "item_name", "name", "movie_title", "product_title"),
    "year": ("year", "release_year"),
    "genres": ("genres", "genre", "categories", "category"),
    "tags": ("tags", "tag", "keywords"),
    "description": ("description", "desc", "overview", "summary", "plot"),
}
ITEM_TEXT_FIELDS = ("title", "year", "genres", "tags", "description")


@dataclass(frozen=True)
class ColumnMapping:
    """Column names for each field (None = absent). ``attributes`` are extra item columns
    kept as key/value text; ``list_sep`` splits genres/tags held in one string."""

    user: str | None = None
    item: str | None = None
    timestamp: str | None = None
    rating: str | None = None
    title: str | None = None
    year: str | None = None
    genres: str | None = None
    tags: str | None = None
    description: str | None = None
    attributes: tuple[str, ...] = ()
    list_sep: str = "|"
    timestamp_unit: TimestampUnit = "auto"

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ColumnMapping:
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.keys()))
        if unknown:
            raise ConfigError(f"unknown column mapping keys {unknown}; valid keys: {cls.keys()}")
        attrs = data.get("attributes", ())
        if isinstance(attrs, str):
            attrs = tuple(a.strip() for a in attrs.split(";") if a.strip())
        data["attributes"] = tuple(attrs)
        if not isinstance(data.get("list_sep", "|"), str) or not data.get("list_sep", "|"):
            raise ConfigError(f"list_sep must be a non-empty string, got {data['list_sep']!r}")
        if data.get("timestamp_unit", "auto") not in ("auto", "s", "ms", "iso"):
            raise ConfigError(f"timestamp_unit must be auto, s, ms or iso, got {data['timestamp_unit']!r}")
        return cls(**data)

    @classmethod
    def parse(cls, text: str | None) -> ColumnMapping:
        """From CLI text: JSON (``{"user": "uid"}``), ``@file.json``, or ``user=uid,item=sku``
        (attributes separated by ';': ``attributes=brand;color``)."""
        if not text:
            return cls()
        text = text.lstrip()  # a trailing space may be the value of 'list_sep= '
        if text.startswith("@"):
            path = Path(text[1:].strip())
            if not path.is_file():
                raise ConfigError(f"mapping file not found: {path}")
            text = path.read_text(encoding="utf-8")
        if text.startswith("{"):
            try:
                return cls.from_dict(json.loads(text))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"mapping is not valid JSON: {exc}") from exc
        pairs: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"mapping entry {part!r} is not key=column")
            # a separator that is whitespace (genres 'Action Comedy': 'list_sep= ') is kept
            pairs[key.strip()] = value.strip() or value
        return cls.from_dict(pairs)

    def with_guesses(self, columns: Iterable[str]) -> ColumnMapping:
        """Fill the unset fields from common column names (explicit entries always win). Names
        compare without case or surrounding spaces ('user_id, rating' has a column ' rating')."""
        cols = list(columns)
        lower = {c.strip().lower(): c for c in cols}
        taken = {v for v in (getattr(self, k) for k in GUESSES) if v}
        updates: dict[str, Any] = {}
        for key, candidates in GUESSES.items():
            if getattr(self, key):
                continue
            for cand in candidates:
                col = lower.get(cand)
                if col is not None and col not in taken:
                    updates[key] = col
                    taken.add(col)
                    break
        return replace(self, **updates)

    def item_fields(self) -> dict[str, str]:
        """The item text fields that are mapped, field -> column."""
        return {k: getattr(self, k) for k in ITEM_TEXT_FIELDS if getattr(self, k)}

    def require(self, where: str, columns: Iterable[str]) -> None:
        cols = set(columns)
        for key in ("user", "item"):
            if not getattr(self, key):
                raise ConfigError(f"{where}: no {key} column; give a mapping such as "
                                  f"--mapping 'user=<column>,item=<column>' (columns: {sorted(cols)})")
        missing = [c for c in (self.user, self.item, self.timestamp, self.rating, *self.item_fields().values(),
                               *self.attributes) if c and c not in cols]
        if missing:
            raise ConfigError(f"{where}: mapped columns {missing} are not in the file (columns: {sorted(cols)})")
