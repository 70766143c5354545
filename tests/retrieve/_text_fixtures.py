"""A tiny generated catalog whose genres are lexically distinct (for the hashing embedder)."""

from __future__ import annotations

from llmrank.data.dataset import Dataset
from llmrank.embed.hashing import HashingEmbedder
from llmrank.records import Item, User

GENRES = ["Horror", "Comedy", "Western", "Documentary"]
WORDS = {"Horror": "ghost haunted scream", "Comedy": "laugh funny wedding",
         "Western": "cowboy desert sheriff", "Documentary": "nature planet ocean"}


def tiny_dataset() -> Dataset:
    """80 items (20 per genre); u1 watched horror, u2 three comedies then a documentary."""
    items = [Item(f"i{n}", f"{WORDS[g]} {n}", 1990 + n % 10, (g,)) for n in range(80)
             for g in [GENRES[n % 4]]]
    events = [("u1", f"i{n}", t, 4.0) for t, n in enumerate((0, 4, 8, 12))]
    events += [("u2", f"i{n}", t, 4.0) for t, n in enumerate((1, 5, 9, 3))]
    return Dataset.from_records("tiny", items, [User("u1"), User("u2")], events)


class OtherModelEmbedder(HashingEmbedder):
    """The same backend and dim as the configured hashing embedder (256), another model:
    different vectors under its own ``model_id``."""

    def __init__(self, model_id: str = "another-256d-model") -> None:
        super().__init__(dim=256)
        self.model_id = model_id

    def encode(self, texts, **kwargs):
        return super().encode([f"{self.model_id} {t}" for t in texts], **kwargs)
