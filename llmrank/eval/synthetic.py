"""Small synthetic interaction datasets with real structure (popularity skew and user taste
clusters), so harness tests run in seconds and trained baselines beat random on them.
``write_movielens_csv`` saves one in the ml-latest-small layout for CLI/subprocess tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.records import Item, User

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi")


def synthetic_dataset(n_users: int = 200, n_items: int = 300, *, seed: int = 0,
                      min_len: int = 5, max_len: int = 30, n_clusters: int = 6,
                      name: str = "synthetic") -> Dataset:
    """Each item belongs to a cluster (its genre) and has a Zipf-like popularity; each user
    prefers one cluster and draws distinct items, mostly from it, at increasing timestamps."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, n_clusters, n_items)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    rng.shuffle(pop)
    items = [Item(str(i + 1), title=f"Item {i + 1}", year=1990 + i % 30,
                  genres=(GENRES[cluster[i] % len(GENRES)],)) for i in range(n_items)]
    users = [User(str(u + 1)) for u in range(n_users)]
    events: list[tuple[str, str, int, float | None]] = []
    for u in range(n_users):
        taste = rng.integers(0, n_clusters)
        w = pop * np.where(cluster == taste, 8.0, 1.0)
        n = int(rng.integers(min_len, max_len + 1))
        chosen = rng.choice(n_items, size=min(n, n_items), replace=False, p=w / w.sum())
        t0 = int(rng.integers(10**9, 10**9 + 10**6))
        for j, i in enumerate(chosen):
            events.append((str(u + 1), str(i + 1), t0 + 60 * j, float(rng.integers(1, 6))))
    return Dataset.from_records(name, items, users, events)


def write_movielens_csv(dataset: Dataset, folder: Path) -> Path:
    """Write ``ratings.csv`` and ``movies.csv`` (ml-latest-small layout) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "movies.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["movieId", "title", "genres"])
        for iid in dataset.item_ids:
            it = dataset.items[iid]
            title = f"{it.title} ({it.year})" if it.year else it.title
            w.writerow([iid, title, "|".join(it.genres) or "(no genres listed)"])
    inter = dataset.interactions
    with (folder / "ratings.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        for k in np.argsort(inter.order, kind="stable"):
            r = inter.rating[k]
            w.writerow([dataset.user_ids[inter.user[k]], dataset.item_ids[inter.item[k]],
                        "" if np.isnan(r) else f"{r:.1f}", int(inter.timestamp[k])])
    return folder
