"""FAISS VectorIndex: inner product over unit vectors, string ids in and out.

Structures: ``flat`` (exact), ``hnsw`` (graph) and ``ivf`` (inverted lists over flat
vectors), picked by catalog size (llmrank.index.select) or forced. Dataset ids map to int64
labels that are never reused, so a removed-then-added item cannot collide with a stale hit.
HNSW cannot delete in FAISS: removals there are tombstones, filtered at search time and
compacted away once they exceed a third of the graph.

A GPU replica is made lazily (flat and IVF only; FAISS has no GPU HNSW) when faiss sees a
GPU; the CPU index stays the source of truth for add/remove/save/reconstruct."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrank._optional import require
from llmrank.errors import IndexError_, UnknownItemError
from llmrank.index.base import MANIFEST, Hits, KeepFn
from llmrank.index.select import IndexParams, choose_kind

log = logging.getLogger(__name__)

FORMAT = "llmrank.faiss/1"
_ADD_CHUNK = 50_000
_COMPACT_FRACTION = 1 / 3


def _faiss() -> Any:
    # faiss-cpu is a base dependency: the gpu extra (vllm, CUDA torch) is the wrong advice
    return require("faiss", package="faiss-cpu")


class FaissIndex:
    """Register name: ``faiss``. Build with ``FaissIndex.build(ids, vectors, kind='auto')``."""

    name = "faiss"

    def __init__(self, dim: int, *, kind: str = "auto", params: IndexParams | None = None,
                 use_gpu: bool = True, expected_size: int = 0) -> None:
        self.faiss = _faiss()
        self._dim = int(dim)
        self._kind = choose_kind(expected_size, kind)
        params = params or IndexParams()
        # IVF lists are sized from the expected size, else from the first batch added
        sized = self._kind == "ivf" and expected_size > 0
        self.params = params.with_ivf_sizes(expected_size) if sized else params
        self.use_gpu = use_gpu
        self._label_of: dict[str, int] = {}
        self._id_of: dict[int, str] = {}
        self._next_label = 0
        self._tombstones: set[int] = set()
        self._gpu: Any = None
        self._index: Any = self._new_structure()

    # ---- construction -----------------------------------------------------------------
    @classmethod
    def build(cls, ids: Sequence[str], vectors: np.ndarray, *, kind: str = "auto",
              params: IndexParams | None = None, use_gpu: bool = True,
              callback: Callable[[int], None] | None = None) -> FaissIndex:
        """An index over ``vectors`` (rows = ``ids``), its structure chosen by size."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-d, got shape {vectors.shape}")
        index = cls(vectors.shape[1], kind=kind, params=params, use_gpu=use_gpu,
                    expected_size=len(ids))
        index.add(ids, vectors, callback=callback)
        return index

    def _new_structure(self) -> Any:
        f, p, d = self.faiss, self.params, self._dim
        if self._kind == "flat":
            return f.IndexIDMap2(f.IndexFlatIP(d))
        if self._kind == "hnsw":
            hnsw = f.IndexHNSWFlat(d, p.hnsw_m, f.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = p.ef_construction
            hnsw.hnsw.efSearch = p.ef_search
            return f.IndexIDMap2(hnsw)
        quantizer = f.IndexFlatIP(d)
        ivf = f.IndexIVFFlat(quantizer, d, int(p.nlist or 1), f.METRIC_INNER_PRODUCT)
        ivf.cp.niter = 10
        ivf.nprobe = int(p.nprobe or 1)
        ivf.set_direct_map_type(f.DirectMap.Hashtable)  # reconstruct and remove by label
        return ivf

    # ---- sizes and ids ----------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def ntotal(self) -> int:
        """Vectors stored in the structure, tombstones included."""
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return len(self._label_of)

    def __contains__(self, item_id: object) -> bool:
        """Ids as ``add`` stores them (strings): 5 is in an index that added 5 or "5"."""
        if not isinstance(item_id, str) and isinstance(item_id, (int, np.integer)):
            item_id = str(item_id)
        return item_id in self._label_of

    def ids(self) -> list[str]:
        return list(self._label_of)

    def describe(self) -> dict[str, Any]:
        """Manifest fields (also what ``index info`` prints)."""
        return {
            "format": FORMAT, "backend": self.name, "kind": self._kind, "dim": self._dim,
            "metric": "inner_product", "n": len(self), "ntotal": self.ntotal,
            "params": self.params.to_dict(), "faiss_version": self.faiss.__version__,
        }

    # ---- mutation ---------------------------------------------------------------------
    def add(self, ids: Sequence[str], vectors: np.ndarray, *,
            callback: Callable[[int], None] | None = None) -> None:
        """Add items; an id already present is replaced. ``callback(n_done)`` per chunk."""
        ids = [str(i) for i in ids]
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self._dim:
            raise ValueError(f"vectors must have shape (n, {self._dim}), got {x.shape}")
        if len(ids) != x.shape[0]:
            raise ValueError(f"{len(ids)} ids for {x.shape[0]} vectors")
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids in one add() call")
        if not ids:
            return
        self.remove([i for i in ids if i in self._label_of])
        if self._kind == "ivf" and not self._index.is_trained:
            self._train_ivf(x)
        labels = np.arange(self._next_label, self._next_label + len(ids), dtype=np.int64)
        for start in range(0, len(ids), _ADD_CHUNK):
            stop = start + _ADD_CHUNK
            self._index.add_with_ids(x[start:stop], labels[start:stop])
            if callback is not None:
                callback(min(stop, len(ids)))
        self._next_label += len(ids)
        for iid, lab in zip(ids, labels.tolist(), strict=True):
            self._label_of[iid] = lab
            self._id_of[lab] = iid
        self._gpu = None

    def _train_ivf(self, x: np.ndarray) -> None:
        """Train the coarse quantizer on a seeded sample; size ``nlist`` from the first batch
        when no size was known, and shrink it when the batch is too small for it (FAISS
        wants ~39 points per list)."""
        if not self.params.nlist or not self.params.nprobe:
            # created without a size: the first batch sets what was not given (an explicit
            # nlist is kept; its nprobe is derived from it, not left at one list)
            self.params = self.params.with_ivf_sizes(x.shape[0])
            self._index = self._new_structure()
        p = self.params
        nlist = int(p.nlist or 1)
        if x.shape[0] < 39 * nlist:
            nlist = max(1, x.shape[0] // 39)
            self.params = IndexParams.from_dict({**p.to_dict(), "nlist": nlist,
                                                 "nprobe": min(int(p.nprobe or 1), nlist)})
            self._index = self._new_structure()
        n_train = min(x.shape[0], nlist * p.train_points_per_list)
        rng = np.random.default_rng(p.seed)
        sample = x[np.sort(rng.choice(x.shape[0], n_train, replace=False))]
        log.info("training IVF: %d lists on %d points", nlist, n_train)
        self._index.train(sample)

    def remove(self, ids: Sequence[str]) -> int:
        """Remove items (ids as ``add`` stores them: strings); returns how many were present."""
        wanted = dict.fromkeys(str(i) for i in ids)
        labels = [self._label_of.pop(i) for i in wanted if i in self._label_of]
        if not labels:
            return 0
        for lab in labels:
            del self._id_of[lab]
        if self._kind == "hnsw":
            self._tombstones.update(labels)
            if len(self._tombstones) > _COMPACT_FRACTION * max(1, self.ntotal):
                self._compact()
        else:
            self._index.remove_ids(np.asarray(labels, dtype=np.int64))
        self._gpu = None
        return len(labels)

    def _compact(self) -> None:
        """Rebuild the HNSW graph without its tombstones (labels are kept)."""
        live = np.fromiter(self._id_of, dtype=np.int64, count=len(self._id_of))
        vecs = self._reconstruct_labels(live)
        log.info("compacting HNSW: dropping %d tombstones", len(self._tombstones))
        self._index = self._new_structure()
        if len(live):
            self._index.add_with_ids(vecs, live)
        self._tombstones.clear()

    # ---- read -------------------------------------------------------------------------
    def labels_of(self, ids: Sequence[str]) -> np.ndarray:
        try:
            return np.fromiter((self._label_of[str(i)] for i in ids), dtype=np.int64,
                               count=len(ids))
        except KeyError as exc:
            raise UnknownItemError(f"item {exc.args[0]!r} is not in the index") from None

    def _reconstruct_labels(self, labels: np.ndarray) -> np.ndarray:
        if len(labels) == 0:
            return np.zeros((0, self._dim), np.float32)
        return np.asarray(self._index.reconstruct_batch(labels), dtype=np.float32)

    def reconstruct(self, ids: Sequence[str]) -> np.ndarray:
        return self._reconstruct_labels(self.labels_of(list(ids)))

    def search(self, queries: np.ndarray, k: int, *,
               exclude: Sequence[Collection[str]] | None = None,
               keep: KeepFn | None = None) -> list[Hits]:
        from llmrank.index.faiss_search import filtered_search

        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self._dim:
            raise ValueError(f"queries must have {self._dim} columns, got {q.shape[1]}")
        if exclude is not None and len(exclude) != q.shape[0]:
            raise ValueError(f"{len(exclude)} exclusion sets for {q.shape[0]} queries")
        if exclude is not None:  # ids as ``add`` stores them
            exclude = [{str(i) for i in e} for e in exclude]
        return filtered_search(self, q, int(k), exclude, keep)

    def raw_search(self, queries: np.ndarray, fetch: int, sel: Any = None,
                   boost: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """One FAISS call: (scores, labels), labels -1 where nothing was found. ``boost``
        widens the ANN beam (HNSW efSearch, IVF nprobe) for filtered fallbacks."""
        f, p = self.faiss, self.params
        fetch = max(1, min(fetch, self.ntotal))
        # the GPU copy as returned, not re-read: an add/remove between a check and a re-read
        # resets self._gpu to None (a server searches under its lock; a library caller may not)
        gpu = self._gpu_index() if sel is None and not boost and fetch <= 2048 else None
        if gpu is not None:
            return gpu.search(queries, fetch)  # type: ignore[no-any-return]
        if self._kind == "hnsw":
            ef = max(p.ef_search, fetch) * (4 if boost else 1)
            params = f.SearchParametersHNSW(efSearch=int(ef))
        elif self._kind == "ivf":
            nlist = int(p.nlist or 1)
            nprobe = int(p.nprobe or 1)
            params = f.SearchParametersIVF(nprobe=min(nlist, nprobe * 8 if boost else nprobe))
        else:
            params = f.SearchParameters()
        if sel is not None:
            params.sel = sel
        scores, labels = self._index.search(queries, fetch, params=params)
        return scores, labels

    def _gpu_index(self) -> Any:
        if not self.use_gpu or self._kind == "hnsw" or self.ntotal == 0:
            return None
        if self._gpu is None and getattr(self.faiss, "get_num_gpus", lambda: 0)() > 0:
            log.info("moving %s index to GPU", self._kind)
            self._gpu = self.faiss.index_cpu_to_all_gpus(self._index)
        return self._gpu

    def on_gpu(self) -> bool:
        return self._gpu_index() is not None

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Folder: ``index.faiss`` (CPU structure), ``labels.npy`` + ``ids.npy`` (the label of
        each live id), ``tombstones.npy``, and ``index.json`` written last."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.faiss.write_index(self._index, str(out / "index.faiss.tmp"))
        os.replace(out / "index.faiss.tmp", out / "index.faiss")
        labels = np.fromiter(self._label_of.values(), dtype=np.int64, count=len(self))
        ids = np.asarray(list(self._label_of), dtype=str)
        np.save(out / "labels.npy", labels)
        np.save(out / "ids.npy", ids)
        np.save(out / "tombstones.npy", np.asarray(sorted(self._tombstones), dtype=np.int64))
        manifest = {**self.describe(), "next_label": self._next_label}
        tmp = out / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.replace(tmp, out / MANIFEST)

    @classmethod
    def load(cls, path: str | Path, *, use_gpu: bool = True) -> FaissIndex:
        src = Path(path)
        try:
            manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexError_(f"cannot read index manifest in {src}: {exc}") from exc
        if manifest.get("format") != FORMAT:
            raise IndexError_(f"{src}: unsupported index format {manifest.get('format')!r}")
        index = cls(int(manifest["dim"]), kind=manifest["kind"],
                    params=IndexParams.from_dict(manifest.get("params")), use_gpu=use_gpu)
        index._index = index.faiss.read_index(str(src / "index.faiss"))
        labels = np.load(src / "labels.npy", allow_pickle=False)
        ids = np.load(src / "ids.npy", allow_pickle=False)
        index._label_of = dict(zip(ids.tolist(), labels.tolist(), strict=True))
        index._id_of = {lab: iid for iid, lab in index._label_of.items()}
        index._tombstones = set(np.load(src / "tombstones.npy", allow_pickle=False).tolist())
        index._next_label = int(manifest["next_label"])
        if index.ntotal != len(index) + len(index._tombstones):
            raise IndexError_(f"{src}: index holds {index.ntotal} vectors but the id map "
                              f"{len(index)} (+{len(index._tombstones)} tombstones)")
        return index
