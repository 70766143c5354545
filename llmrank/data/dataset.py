"""The one canonical in-memory dataset every loader produces and every stage consumes.

Items and users are typed records keyed by the dataset's string ids. Interactions are
columnar numpy arrays of integer codes (``Dataset.item_ids[code]`` is the id) so that
millions of events stay cheap; ``Dataset.histories()`` gives each user's time-ordered items.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrank.data.lines import LoadReport
from llmrank.data.presplit import PredefinedSplit
from llmrank.errors import DataError, UnknownItemError, UnknownUserError
from llmrank.records import Item, User

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


@dataclass
class Interactions:
    """Columnar interaction log. ``user``/``item`` are codes into the dataset's id lists;
    ``order`` is the position in the source file, the tie-breaker for equal timestamps."""

    user: np.ndarray  # int32
    item: np.ndarray  # int32
    timestamp: np.ndarray  # int64, seconds
    rating: np.ndarray  # float32, NaN when the source has no rating
    order: np.ndarray  # int64

    def __post_init__(self) -> None:
        n = len(self.user)
        for name in ("item", "timestamp", "rating", "order"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"interaction column {name!r} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def empty(cls) -> Interactions:
        return cls(
            np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64),
            np.zeros(0, np.float32), np.zeros(0, np.int64),
        )

    def take(self, mask_or_index: np.ndarray) -> Interactions:
        return Interactions(
            self.user[mask_or_index], self.item[mask_or_index], self.timestamp[mask_or_index],
            self.rating[mask_or_index], self.order[mask_or_index],
        )

    def has_ratings(self) -> bool:
        return bool(len(self.rating)) and not bool(np.isnan(self.rating).all())


@dataclass
class Dataset:
    """Items, users and timestamped interactions of one domain.

    ``report`` says how it was loaded (files, skipped lines, preprocessing steps);
    ``split`` is a split shipped with the data (RecBole benchmark files), None otherwise."""

    name: str
    items: dict[str, Item]
    users: dict[str, User]
    interactions: Interactions
    item_ids: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    report: LoadReport | None = None
    split: PredefinedSplit | None = None

    def __post_init__(self) -> None:
        if not self.item_ids:
            self.item_ids = list(self.items)
        if not self.user_ids:
            self.user_ids = list(self.users)
        self._item_index = {iid: i for i, iid in enumerate(self.item_ids)}
        self._user_index = {uid: i for i, uid in enumerate(self.user_ids)}
        self._histories: list[np.ndarray] | None = None
        self._rows: tuple[np.ndarray, np.ndarray] | None = None

    # ---- sizes and lookups -------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def item_code(self, item_id: str) -> int:
        try:
            return self._item_index[item_id]
        except KeyError:
            raise UnknownItemError(f"unknown item id {item_id!r} in dataset {self.name!r}") from None

    def user_code(self, user_id: str) -> int:
        try:
            return self._user_index[user_id]
        except KeyError:
            raise UnknownUserError(f"unknown user id {user_id!r} in dataset {self.name!r}") from None

    def has_item(self, item_id: str) -> bool:
        return item_id in self._item_index

    def has_user(self, user_id: str) -> bool:
        return user_id in self._user_index

    def item(self, item_id: str) -> Item:
        try:
            return self.items[item_id]
        except KeyError:
            raise UnknownItemError(f"unknown item id {item_id!r} in dataset {self.name!r}") from None

    def item_codes(self, item_ids: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.item_code(i) for i in item_ids), dtype=np.int64)

    # ---- histories ---------------------------------------------------------------------
    def histories(self) -> list[np.ndarray]:
        """Per user code, the item codes ordered by (timestamp, file order). Cached."""
        if self._histories is None:
            order, bounds = self._user_rows()
            items = self.interactions.item[order]
            self._histories = [items[bounds[u]: bounds[u + 1]] for u in range(self.n_users)]
        return self._histories

    def _user_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Interaction rows ordered by (user, timestamp, file order), and each user's bounds in
        that order (user u: ``order[bounds[u]:bounds[u + 1]]``). Cached: histories and ratings
        read it."""
        if self._rows is None:
            inter = self.interactions
            order = np.lexsort((inter.order, inter.timestamp, inter.user))
            self._rows = order, np.searchsorted(inter.user[order], np.arange(self.n_users + 1))
        return self._rows

    def history(self, user_id: str) -> list[str]:
        """A user's items in time order, as ids."""
        codes = self.histories()[self.user_code(user_id)]
        return [self.item_ids[c] for c in codes]

    def user_ratings(self, user_id: str) -> dict[str, float]:
        """A user's latest rating of each item they rated (items without a rating are left
        out): what an explanation may call 'liked' depends on it."""
        inter = self.interactions
        order, bounds = self._user_rows()
        u = self.user_code(user_id)
        rows = order[bounds[u]: bounds[u + 1]]
        return {self.item_ids[int(inter.item[r])]: float(inter.rating[r])
                for r in rows if not np.isnan(inter.rating[r])}

    def genre_vocabulary(self) -> list[str]:
        """Every genre some item has, in first-seen order (what an explanation may claim
        about an item is checked against this)."""
        return list(dict.fromkeys(g for it in self.items.values() for g in it.genres))

    def item_popularity(self) -> np.ndarray:
        """Interaction count per item code."""
        return np.bincount(self.interactions.item, minlength=self.n_items)

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_records(
        cls,
        name: str,
        items: Iterable[Item],
        users: Iterable[User],
        events: Iterable[tuple[str, str, int, float | None]],
    ) -> Dataset:
        """Build from (user_id, item_id, timestamp, rating) tuples. Ids seen only in events get
        bare Item/User records so that no interaction is dropped."""
        uids: list[str] = []
        iids: list[str] = []
        ts: list[int] = []
        ratings: list[float] = []
        for uid, iid, t, r in events:
            uids.append(uid)
            iids.append(iid)
            ts.append(int(t))
            ratings.append(np.nan if r is None else float(r))
        return cls.from_arrays(name, items, users, uids, iids, np.asarray(ts, np.int64),
                               np.asarray(ratings, np.float32))

    @classmethod
    def from_arrays(
        cls,
        name: str,
        items: Iterable[Item],
        users: Iterable[User],
        user_ids: Sequence[str] | pa.Array | pa.ChunkedArray,
        item_ids: Sequence[str] | pa.Array | pa.ChunkedArray,
        timestamps: np.ndarray,
        ratings: np.ndarray | None = None,
        order: np.ndarray | None = None,
    ) -> Dataset:
        """Columnar construction, the fast path for large logs: ids are encoded in C by
        pyarrow. Codes follow the catalog's order, then first appearance in the log (the
        same numbering as ``from_records``). ``order`` defaults to the row position."""
        item_map: dict[str, Item] = {it.item_id: it for it in items}
        user_map: dict[str, User] = {u.user_id: u for u in users}
        u_codes = _encode(user_ids, user_map, User, "user")
        i_codes = _encode(item_ids, item_map, Item, "item")
        n = len(u_codes)
        ts = np.asarray(timestamps, dtype=np.int64)
        rt = np.full(n, np.nan, np.float32) if ratings is None else np.asarray(ratings, np.float32)
        od = np.arange(n, dtype=np.int64) if order is None else np.asarray(order, np.int64)
        return cls(name, item_map, user_map, Interactions(u_codes, i_codes, ts, rt, od))

    def subset(self, interaction_mask: np.ndarray, *, name: str | None = None,
               drop_unused: bool = True) -> Dataset:
        """A new dataset with only the masked interactions. With ``drop_unused`` the users and
        items left without interactions are removed and codes are renumbered."""
        inter = self.interactions.take(interaction_mask)
        if self.split is not None:
            # positions in the shipped split refer to the unfiltered histories
            log.warning("dataset %s: filtering drops its predefined split", self.name)
        if not drop_unused:
            return Dataset(name or self.name, self.items, self.users, inter,
                           list(self.item_ids), list(self.user_ids), report=self.report)
        keep_users = np.unique(inter.user)
        keep_items = np.unique(inter.item)
        user_remap = np.full(self.n_users, -1, np.int64)
        user_remap[keep_users] = np.arange(len(keep_users))
        item_remap = np.full(self.n_items, -1, np.int64)
        item_remap[keep_items] = np.arange(len(keep_items))
        item_ids = [self.item_ids[c] for c in keep_items]
        user_ids = [self.user_ids[c] for c in keep_users]
        new_inter = Interactions(
            user_remap[inter.user].astype(np.int32), item_remap[inter.item].astype(np.int32),
            inter.timestamp, inter.rating, inter.order,
        )
        return Dataset(
            name or self.name,
            {i: self.items[i] for i in item_ids},
            {u: self.users[u] for u in user_ids},
            new_inter, item_ids, user_ids, report=self.report,
        )

    def summary(self) -> Mapping[str, object]:
        """Sizes and distributions a person checks first (``llmrank data info``)."""
        inter = self.interactions
        n = len(inter)
        density = n / max(1, self.n_users * self.n_items)
        lengths = np.bincount(inter.user, minlength=self.n_users) if n else np.zeros(1, np.int64)
        rated = inter.rating[~np.isnan(inter.rating)] if n else inter.rating
        out: dict[str, Any] = {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "density": round(density, 6),
            "has_ratings": inter.has_ratings(),
            "history_length_median": float(np.median(lengths)) if n else 0.0,
            "history_length_min": int(lengths.min()) if n else 0,
            "history_length_mean": round(float(lengths.mean()), 2) if n else 0.0,
            "history_length_max": int(lengths.max()) if n else 0,
            "items_with_title": sum(1 for it in self.items.values() if it.title),
            "rating_min": float(rated.min()) if len(rated) else None,
            "rating_max": float(rated.max()) if len(rated) else None,
            "first_timestamp": _iso(int(inter.timestamp.min())) if n else None,
            "last_timestamp": _iso(int(inter.timestamp.max())) if n else None,
            "predefined_split": self.split is not None,
        }
        return out


def _iso(ts: int) -> str:
    """UTC date of a Unix timestamp; synthetic position 'timestamps' show as 1970 dates."""
    try:
        return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return str(ts)


def _encode(ids: Any, records: dict[str, Any], factory: Any, what: str) -> np.ndarray:
    """Codes for an id column, adding a bare record for each id the catalog lacks. Python
    lists are encoded with a dict (no pyarrow import for small data); pyarrow arrays from
    the fast readers are encoded in C."""
    index = {key: k for k, key in enumerate(records)}
    if isinstance(ids, (list, tuple)):
        for key in dict.fromkeys(ids):  # unique ids in first-appearance order, deduped in C
            if key not in index:
                if key is None:
                    raise DataError(f"an interaction has no {what} id")
                index[key] = len(index)
                records[key] = factory(key)
        return np.fromiter(map(index.__getitem__, ids), dtype=np.int32, count=len(ids))
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(ids, type=pa.string())
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    if arr.null_count:
        raise DataError(f"{arr.null_count} interactions have no {what} id")
    uniques = pc.unique(arr)
    remap = np.empty(len(uniques), np.int64)
    for k, key in enumerate(uniques.to_pylist()):
        code = index.get(key)
        if code is None:
            code = index[key] = len(index)
            records[key] = factory(key)
        remap[k] = code
    positions = pc.index_in(arr, value_set=uniques)
    if isinstance(positions, pa.ChunkedArray):
        positions = positions.combine_chunks()
    return remap[positions.to_numpy(zero_copy_only=False)].astype(np.int32)
