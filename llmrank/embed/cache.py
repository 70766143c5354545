"""Disk cache of text embeddings keyed by (model, text hash).

Rebuilding an index for an unchanged catalog should cost a lookup, not minutes of model time
(MiniLM embeds about 450 texts/s on 2 cores). One SQLite file per model keeps writers from
different processes safe (WAL) without a server and stays a single portable file."""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from llmrank.embed.base import Embedder, EncodeCallback
from llmrank.errors import ModelError

log = logging.getLogger(__name__)

_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")
_CHUNK = 500  # sqlite's default limit on bound parameters is 999
_T = TypeVar("_T")


def text_key(text: str) -> str:
    """Stable key of a text (sha256, 128 bits are plenty against collisions). A lone UTF-16
    surrogate (a truncated emoji from a JSON escape) has no UTF-8 form; 'surrogatepass' keys
    it instead of crashing, and leaves the key of every valid text as it was."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def model_key(embedder: Embedder) -> str:
    """What makes two embedders interchangeable: backend name, model id, dim, an optional
    ``fingerprint`` (e.g. the mtime of a local model folder, so a retrained model misses) and
    optional ``options`` (settings that change the vectors, e.g. max_seq_length: the same
    model truncating at 8 tokens must not be served the 256-token vectors)."""
    fingerprint = str(getattr(embedder, "fingerprint", ""))
    raw = f"{embedder.name}|{embedder.model_id}|{embedder.dim}|{fingerprint}"
    options = str(getattr(embedder, "options", ""))
    if options:  # only when set, so an embedder on its defaults keeps its existing cache
        raw += f"|{options}"
    slug = _SLUG.sub("_", f"{embedder.name}-{embedder.model_id}")[-60:].strip("_")
    return f"{slug}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


class _BrokenCache(Exception):
    """The cache file holds something other than our table (see ``EmbeddingCache``)."""


def _damaged(exc: sqlite3.DatabaseError | _BrokenCache) -> bool:
    """A damaged file (not a database, malformed pages, another table layout), as opposed to
    a busy or read-only one: those must reach the caller, not cost the cache."""
    if isinstance(exc, _BrokenCache):
        return True
    name = str(getattr(exc, "sqlite_errorname", ""))
    return name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB"


class EmbeddingCache:
    """Vectors of one model in ``<root>/<model_key>.sqlite``.

    A damaged file (a process or machine killed while it was copied or written by something
    other than sqlite, a truncated download, a table from another layout) is deleted and
    started afresh: it is only a cache. Rows of the wrong length or with non-finite values
    are misses, and the recomputed vectors replace them."""

    def __init__(self, root: str | Path, key: str, dim: int) -> None:
        self.path = Path(root) / f"{key}.sqlite"
        self.dim = dim
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._guarded(self._init_db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=60)
        try:
            with con:
                yield con
        finally:
            con.close()

    def _init_db(self) -> None:
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            columns = [row[1] for row in con.execute("PRAGMA table_info(emb)")]
            if columns != ["key", "vec"]:
                raise _BrokenCache(f"table emb has columns {columns}, not ['key', 'vec']")

    def _healthy(self) -> bool:
        """Whether the file is usable now (another process may have rebuilt it meanwhile)."""
        try:
            self._init_db()
            with self._connect() as con:
                return [r[0] for r in con.execute("PRAGMA quick_check")] == ["ok"]
        except (sqlite3.DatabaseError, _BrokenCache) as exc:
            if not _damaged(exc):
                raise
            return False

    def _guarded(self, op: Callable[[], _T]) -> _T:
        try:
            return op()
        except (sqlite3.DatabaseError, _BrokenCache) as exc:
            if not _damaged(exc):
                raise
            if not self._healthy():
                log.warning("embedding cache %s is damaged (%s); rebuilding it", self.path, exc)
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                self._init_db()
            return op()

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return self._guarded(lambda: self._get_many(keys))

    def _get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        size = self.dim * np.dtype(np.float32).itemsize
        with self._connect() as con:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start:start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = con.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk)
                for key, blob in rows:
                    if not isinstance(blob, bytes) or len(blob) != size:
                        continue  # another dim, or damaged: a miss, rewritten by put_many
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if np.isfinite(vec).all():
                        found[key] = vec
        return found

    def put_many(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)

        def put() -> None:
            with self._connect() as con:
                con.executemany(
                    "INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)",
                    ((k, vectors[i].tobytes()) for i, k in enumerate(keys)),
                )

        self._guarded(put)

    def __len__(self) -> int:
        def count() -> int:
            with self._connect() as con:
                return int(con.execute("SELECT COUNT(*) FROM emb").fetchone()[0])

        return self._guarded(count)


class CachedEmbedder:
    """Wraps any Embedder: looks texts up in the cache, embeds only the misses, stores them.
    ``last_hits``/``last_misses`` tell the caller what the previous ``encode`` cost."""

    def __init__(self, inner: Embedder, cache_dir: str | Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.model_id = inner.model_id
        self.cache = EmbeddingCache(cache_dir, model_key(inner), inner.dim)
        self.last_hits = 0
        self.last_misses = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def fingerprint(self) -> str:
        return str(getattr(self.inner, "fingerprint", ""))

    @property
    def options(self) -> str:
        return str(getattr(self.inner, "options", ""))

    def encode(
        self,
        texts: list[str],
        *,
        batch_size: int = 64,
        progress: bool = False,
        callback: EncodeCallback | None = None,
    ) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        unique = list(dict.fromkeys(keys))
        found = self.cache.get_many(unique)
        text_of = dict(zip(keys, texts, strict=True))
        missing = [k for k in unique if k not in found]
        self.last_hits = len(unique) - len(missing)
        self.last_misses = len(missing)
        missing_set = set(missing)
        done_before = sum(1 for k in keys if k not in missing_set)
        if callback is not None:
            callback(done_before)
        if missing:
            log.info("embedding %d new texts (%d cached)", len(missing), self.last_hits)
            inner_cb = None if callback is None else (lambda n: callback(done_before + n))
            vecs = self.inner.encode([text_of[k] for k in missing], batch_size=batch_size,
                                     progress=progress, callback=inner_cb)
            vecs = np.asarray(vecs)
            if vecs.shape != (len(missing), self.dim):
                raise ModelError(
                    f"embedder {self.model_id!r} returned vectors of shape {vecs.shape} for "
                    f"{len(missing)} texts, not ({len(missing)}, {self.dim}) as its dim says")
            self.cache.put_many(missing, vecs)
            found.update(zip(missing, vecs, strict=True))
        if callback is not None:
            callback(len(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out
