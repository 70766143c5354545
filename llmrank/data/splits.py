"""Preprocessing and leave-one-out splits.

Leave-one-out by timestamp (ties broken by file order): each user's last item is the test
target, the second-to-last the validation target, everything before is training history.
Users with fewer than three interactions stay in training and are not evaluated.

Ties are common in MovieLens (ml-latest-small 5-core: 91 of 610 users' test item shares its
second with the validation item; ml-100k: 415 of 943). LlamaRec breaks them by its densified
item index (the iteration order of a Python set of movie ids), not by file order: on
ml-latest-small 5-core that picks a different validation target for 2 users and the same
test target for all 610, so the test split matches the published one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrank.data.dataset import Dataset, Interactions
from llmrank.errors import DataError


def kcore(dataset: Dataset, k: int) -> Dataset:
    """Remove users and items with fewer than ``k`` interactions, repeatedly, until none is
    left (LlamaRec's 5-core on ml-latest-small gives 610 users, 3,650 items, 90,274 events)."""
    if k <= 1:
        return dataset
    inter = dataset.interactions
    mask = np.ones(len(inter), dtype=bool)
    while True:
        u_count = np.bincount(inter.user[mask], minlength=dataset.n_users)
        i_count = np.bincount(inter.item[mask], minlength=dataset.n_items)
        bad = (u_count[inter.user] < k) | (i_count[inter.item] < k)
        new_mask = mask & ~bad
        if new_mask.sum() == mask.sum():
            break
        mask = new_mask
    if not mask.any():
        raise DataError(f"the {k}-core of {dataset.name!r} leaves no interactions (the largest "
                        f"user history has {int(np.bincount(inter.user).max(initial=0))}); use a smaller kcore")
    out = dataset.subset(mask, name=f"{dataset.name}-{k}core")
    # keep catalog items that survived; items never interacted with are dropped by k-core
    return out


def min_rating(dataset: Dataset, threshold: float) -> Dataset:
    """Keep interactions rated at least ``threshold`` (unrated ones are kept)."""
    r = dataset.interactions.rating
    mask = np.isnan(r) | (r >= threshold)
    return dataset.subset(mask, name=dataset.name, drop_unused=False)


@dataclass
class LeaveOneOut:
    """Leave-one-out split over a dataset's time-ordered histories (item codes).

    ``train[u]`` is the history before the validation item. ``valid_target[u]`` and
    ``test_target[u]`` are -1 for users not evaluated (too short, or without rows in a
    shipped split); the targets are always each evaluated user's last two items."""

    dataset: Dataset
    train: list[np.ndarray]
    valid_target: np.ndarray
    test_target: np.ndarray

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> LeaveOneOut:
        hists = dataset.histories()
        n = dataset.n_users
        valid = np.full(n, -1, np.int64)
        test = np.full(n, -1, np.int64)
        train: list[np.ndarray] = []
        for u, h in enumerate(hists):
            if len(h) >= 3:
                train.append(h[:-2])
                valid[u] = h[-2]
                test[u] = h[-1]
            else:
                train.append(h)
        return cls(dataset, train, valid, test)

    @classmethod
    def from_predefined(cls, dataset: Dataset) -> LeaveOneOut:
        """The split shipped with the data (RecBole benchmark files) as a LeaveOneOut: its
        own valid and test rows, so exactly the users it evaluates (whatever their history
        length; the others only train). Published numbers were computed on these rows, so
        they are not re-derived. Each user with rows must have one valid and one test row at
        their last two items, else DataError."""
        if dataset.split is None:
            raise DataError(f"dataset {dataset.name!r} has no predefined split")
        hists = dataset.histories()
        targets = dataset.split.leave_one_out_targets(hists)
        if targets is None:
            raise DataError(
                f"the predefined split of {dataset.name!r} is not leave-one-out; iterate it with "
                "dataset.split.examples(stage, dataset.histories())")
        valid, test = targets
        train = [h[:-2] if valid[u] >= 0 else h for u, h in enumerate(hists)]
        return cls(dataset, train, valid, test)

    def eval_users(self) -> np.ndarray:
        """User codes that have validation and test targets."""
        return np.flatnonzero(self.test_target >= 0)

    def history(self, user: int, stage: str) -> np.ndarray:
        """The history a model sees when predicting ``stage`` ('valid' or 'test'): for test
        it includes the validation item (LlamaRec protocol)."""
        if stage == "valid":
            return self.train[user]
        if stage == "test":
            if self.valid_target[user] < 0:
                return self.train[user]
            return np.append(self.train[user], self.valid_target[user])
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")

    def target(self, user: int, stage: str) -> int:
        return int(self.valid_target[user] if stage == "valid" else self.test_target[user])

    def seen(self, user: int, stage: str) -> np.ndarray:
        """Items excluded from ranking for this user at this stage (the history)."""
        return self.history(user, stage)

    def train_interactions(self) -> Interactions:
        """Interactions of the training part only (for models trained on interactions)."""
        ds = self.dataset
        inter = ds.interactions
        order = np.lexsort((inter.order, inter.timestamp, inter.user))
        users = inter.user[order]
        bounds = np.searchsorted(users, np.arange(ds.n_users + 1))
        keep = np.ones(len(order), dtype=bool)
        for u in self.eval_users():
            keep[bounds[u + 1] - 2: bounds[u + 1]] = False
        return inter.take(order[keep])

    def train_matrix(self, stage: str = "valid"):  # -> scipy.sparse.csr_matrix
        """User x item binary matrix of what a model may learn from when predicting
        ``stage``: training histories, plus validation items for 'test'."""
        from scipy import sparse

        ds = self.dataset
        rows, cols = [], []
        for u in range(ds.n_users):
            h = self.history(u, stage)
            rows.append(np.full(len(h), u))
            cols.append(h)
        r = np.concatenate(rows) if rows else np.zeros(0, int)
        c = np.concatenate(cols) if cols else np.zeros(0, int)
        m = sparse.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(ds.n_users, ds.n_items))
        m.data[:] = 1.0  # construction summed repeated (user, item) pairs; count them once
        return m
