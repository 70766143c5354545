from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from llmrank.config import EmbedderConfig
from llmrank.embed.cache import CachedEmbedder, EmbeddingCache, model_key, text_key
from llmrank.embed.factory import create_embedder
from llmrank.embed.hashing import HashingEmbedder


class CountingEmbedder(HashingEmbedder):
    """Counts the texts it is actually asked to embed."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__(dim=dim)
        self.calls: list[list[str]] = []

    def encode(self, texts, **kwargs):  # type: ignore[override]
        self.calls.append(list(texts))
        return super().encode(texts, **kwargs)


def test_second_encode_is_served_from_disk(tmp_path):
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, tmp_path)
    texts = ["a b c", "d e f", "a b c"]
    first = cached.encode(texts)
    assert inner.calls == [["a b c", "d e f"]]  # duplicates embedded once
    assert (cached.last_hits, cached.last_misses) == (0, 2)

    again = CachedEmbedder(CountingEmbedder(), tmp_path)  # a new process would see the same file
    second = again.encode([*texts, "new text"])
    assert again.inner.calls == [["new text"]]  # type: ignore[attr-defined]
    assert (again.last_hits, again.last_misses) == (2, 1)
    np.testing.assert_array_equal(first, second[:3])
    np.testing.assert_array_equal(second[3], HashingEmbedder(dim=32).encode(["new text"])[0])


def test_text_key_takes_lone_surrogates(tmp_path):
    assert text_key("Café") == "73473dcc12b763085904a5279d048c4d"  # valid texts keep their keys
    assert text_key("cut \ud83d") != text_key("cut \ufffd")
    cached = CachedEmbedder(HashingEmbedder(dim=16), tmp_path)
    assert cached.encode(["cut \ud83d", "ok"]).shape == (2, 16)  # raised UnicodeEncodeError


def test_models_do_not_share_entries(tmp_path):
    a, b = HashingEmbedder(dim=32), HashingEmbedder(dim=64)
    assert model_key(a) != model_key(b)
    CachedEmbedder(a, tmp_path).encode(["x"])
    cb = CachedEmbedder(b, tmp_path)
    assert cb.encode(["x"]).shape == (1, 64) and cb.last_misses == 1


def test_options_that_change_vectors_change_the_key(tmp_path):
    plain = HashingEmbedder(dim=32)
    assert model_key(plain) == "hashing-hashing-v1-32-123d09723d46"  # defaults: existing caches still hit
    short = CountingEmbedder()
    short.options = '{"max_seq_length": 8}'  # type: ignore[attr-defined]
    assert model_key(short) != model_key(plain)
    CachedEmbedder(plain, tmp_path).encode(["x"])
    cached = CachedEmbedder(short, tmp_path)
    assert cached.options == short.options  # type: ignore[attr-defined]
    cached.encode(["x"])
    assert cached.last_misses == 1 and short.calls == [["x"]]


def test_cache_ignores_rows_of_wrong_dim(tmp_path):
    cache = EmbeddingCache(tmp_path, "k", dim=4)
    cache.put_many([text_key("x")], np.ones((1, 3), np.float32))
    assert cache.get_many([text_key("x")]) == {}


def test_callback_ends_at_total(tmp_path):
    cached = CachedEmbedder(HashingEmbedder(dim=16), tmp_path)
    cached.encode(["a", "b"])
    seen: list[int] = []
    cached.encode(["a", "b", "c"], callback=seen.append)
    assert seen[0] == 2 and seen[-1] == 3


def test_factory_wraps_in_cache_unless_disabled(tmp_path):
    cfg = EmbedderConfig(backend="hashing")
    assert isinstance(create_embedder(cfg, cache=tmp_path), CachedEmbedder)
    assert isinstance(create_embedder(cfg, cache=False), HashingEmbedder)
    assert isinstance(create_embedder(EmbedderConfig(backend="hashing", cache=False)), HashingEmbedder)


def _filled_cache(tmp_path, texts):
    cached = CachedEmbedder(HashingEmbedder(dim=16), tmp_path)
    cached.encode(texts)
    return cached.cache.path


def _reopen_and_check(tmp_path, texts):
    """A new process opening the cache gets the right vectors, and the cache works again."""
    inner = CountingEmbedder(dim=16)
    cached = CachedEmbedder(inner, tmp_path)
    np.testing.assert_array_equal(cached.encode(texts), HashingEmbedder(dim=16).encode(texts))
    again = CachedEmbedder(CountingEmbedder(dim=16), tmp_path)
    again.encode(texts)
    assert again.last_misses == 0  # rebuilt, and served from disk next time
    return inner


def test_a_file_that_is_not_a_database_is_rebuilt(tmp_path):
    texts = [f"text {i}" for i in range(50)]
    path = _filled_cache(tmp_path, texts)
    for side in ("-wal", "-shm"):
        Path(f"{path}{side}").unlink(missing_ok=True)
    path.write_bytes(b"not sqlite at all " * 64)  # raised 'file is not a database'
    inner = _reopen_and_check(tmp_path, texts)
    assert inner.calls == [texts]


def test_a_truncated_cache_file_is_rebuilt(tmp_path):
    texts = [f"text {i}" for i in range(300)]
    path = _filled_cache(tmp_path, texts)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # killed while copied: 'disk image is malformed'
    _reopen_and_check(tmp_path, texts)


def test_a_cache_corrupted_after_it_was_opened_is_rebuilt(tmp_path):
    texts = [f"text {i}" for i in range(300)]
    cached = CachedEmbedder(HashingEmbedder(dim=16), tmp_path)
    cached.encode(texts[:1])
    path = cached.cache.path
    _filled_cache(tmp_path, texts)
    data = bytearray(path.read_bytes())
    data[4096:] = bytes((b * 7 + 13) % 256 for b in data[4096:])
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(cached.encode(texts), HashingEmbedder(dim=16).encode(texts))
    assert len(cached.cache) == len(texts)


def test_damaged_rows_are_misses_and_get_rewritten(tmp_path):
    texts = ["odd", "nan", "fine"]
    path = _filled_cache(tmp_path, texts)
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE emb SET vec=? WHERE key=?", (b"abc", text_key("odd")))  # raised
        con.execute("UPDATE emb SET vec=? WHERE key=?",
                    (np.full(16, np.nan, np.float32).tobytes(), text_key("nan")))  # was served
    con.close()
    inner = _reopen_and_check(tmp_path, texts)
    assert inner.calls == [["odd", "nan"]]


def test_a_table_of_another_layout_is_rebuilt(tmp_path):
    con = sqlite3.connect(tmp_path / f"{model_key(HashingEmbedder(dim=16))}.sqlite")
    with con:
        con.execute("CREATE TABLE emb (k TEXT, v BLOB)")  # raised 'no such column: key'
    con.close()
    _reopen_and_check(tmp_path, ["a", "b"])


class WrongDimEmbedder(HashingEmbedder):
    """Says 16-d, returns 8-d vectors (e.g. a plugin whose ``dim`` ignores a truncation)."""

    def encode(self, texts, **kwargs):  # type: ignore[override]
        return HashingEmbedder(dim=8).encode(texts, **kwargs)


def test_vectors_of_another_shape_than_the_embedder_says_are_refused(tmp_path):
    from llmrank.errors import ModelError

    cached = CachedEmbedder(WrongDimEmbedder(dim=16), tmp_path)
    with pytest.raises(ModelError, match="8"):  # was numpy's 'could not broadcast'
        cached.encode(["a", "b"])
    assert len(cached.cache) == 0  # and nothing half-right was stored
