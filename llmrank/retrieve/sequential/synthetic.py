"""A tiny generated dataset with a learnable sequential pattern, for tests and smoke runs.

Items come in genres; each user stays in one genre and walks its items cyclically (item p
is followed by p + 1 modulo the genre size), starting anywhere. A sequential model must
learn "next in the cycle" (random guessing hits 1 / n_items); a text model can only learn
the genre, which the item text names. Items listed in ``cold`` are dropped from every
history (they exist in the catalog with text, but nobody interacted with them)."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.records import Item, User

GENRES = ("western", "musical", "horror", "romance", "documentary", "animation")
WORDS = {"western": "cowboy sheriff desert", "musical": "song dance stage",
         "horror": "ghost haunted scream", "romance": "love wedding kiss",
         "documentary": "nature planet ocean", "animation": "cartoon puppet toy"}


def item_id(genre: int, pos: int) -> str:
    return f"g{genre}i{pos}"


def cyclic_items(n_genres: int = 4, per_genre: int = 10) -> list[Item]:
    if n_genres > len(GENRES):
        raise ValueError(f"at most {len(GENRES)} genres")
    return [
        Item(item_id(g, p), title=f"{GENRES[g].title()} {WORDS[GENRES[g]]} {p}", year=1990 + p,
             genres=(GENRES[g],), attributes={"studio": "north" if p % 2 else "south"})
        for g in range(n_genres) for p in range(per_genre)
    ]


def cyclic_dataset(n_genres: int = 4, per_genre: int = 10, n_users: int = 160,
                   min_len: int = 5, max_len: int = 10, seed: int = 0,
                   cold: Collection[str] = ()) -> Dataset:
    """Users walk their genre's items in cycle order (at most one lap, so no item repeats
    and a leave-one-out target is never in its own history); ``cold`` items never appear."""
    max_len = min(max_len, per_genre)
    rng = np.random.default_rng(seed)
    items = cyclic_items(n_genres, per_genre)
    users = [User(f"u{u}") for u in range(n_users)]
    cold = set(cold)
    events: list[tuple[str, str, int, float | None]] = []
    for u in range(n_users):
        g = int(rng.integers(n_genres))
        start = int(rng.integers(per_genre))
        length = int(rng.integers(min_len, max_len + 1))
        t = 0
        for step in range(length):
            iid = item_id(g, (start + step) % per_genre)
            if iid in cold:
                continue
            t += 1
            events.append((f"u{u}", iid, 1_000_000 + 60 * t, 5.0))
    return Dataset.from_records("cyclic", items, users, events)
