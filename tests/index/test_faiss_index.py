from __future__ import annotations

import numpy as np
import pytest

from llmrank.errors import IndexError_, UnknownItemError
from llmrank.index import VectorIndex, create_index, load_index
from llmrank.index.faiss_index import FaissIndex
from llmrank.index.select import IndexParams

KINDS = ["flat", "hnsw", "ivf"]


def unit(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ids(n: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


@pytest.mark.parametrize("kind", KINDS)
def test_string_ids_in_and_out(kind):
    x = unit(600)
    index = FaissIndex.build(ids(600), x, kind=kind)
    assert isinstance(index, VectorIndex) and index.kind == kind and len(index) == 600
    hits = index.search(x[:3], 5)
    assert [h[0][0] for h in hits] == ["m0", "m1", "m2"]  # each vector finds itself first
    assert all(isinstance(i, str) for h in hits for i, _ in h)
    scores = [s for _, s in hits[0]]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_add_remove_reconstruct_round_trip(kind):
    x = unit(500)
    index = FaissIndex.build(ids(500), x, kind=kind)
    np.testing.assert_allclose(index.reconstruct(["m7", "m3"]), x[[7, 3]], atol=1e-6)
    assert index.remove(["m0", "m1", "nope", "m0"]) == 2
    assert len(index) == 498 and "m0" not in index and "m2" in index
    assert all(i not in ("m0", "m1") for i, _ in index.search(x[:2], 20)[0])
    with pytest.raises(UnknownItemError):
        index.reconstruct(["m0"])
    new = unit(2, seed=9)
    index.add(["m0", "extra"], new)  # re-added id gets a fresh label
    assert index.search(new[:1], 1)[0][0][0] == "m0"
    np.testing.assert_allclose(index.reconstruct(["extra"]), new[1:], atol=1e-6)
    assert len(index) == 500


def test_add_replaces_existing_vector():
    x = unit(50)
    index = FaissIndex.build(ids(50), x, kind="flat")
    index.add(["m5"], x[10:11])
    assert len(index) == 50
    np.testing.assert_allclose(index.reconstruct(["m5"]), x[10:11], atol=1e-6)


def test_hnsw_tombstones_compact():
    x = unit(300)
    index = FaissIndex.build(ids(300), x, kind="hnsw")
    index.remove(ids(50))
    assert index.ntotal == 300  # tombstones, not yet compacted
    index.remove([f"m{i}" for i in range(50, 120)])
    assert index.ntotal == len(index) == 180  # compacted past a third
    assert index.search(x[200:201], 1)[0][0][0] == "m200"


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(tmp_path, kind):
    x = unit(400)
    index = FaissIndex.build(ids(400), x, kind=kind)
    index.remove(["m1"])
    index.save(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix")
    assert isinstance(loaded, FaissIndex)
    assert loaded.kind == kind and len(loaded) == 399 and set(loaded.ids()) == set(index.ids())
    assert loaded.search(x[:4], 6) == index.search(x[:4], 6)
    loaded.add(["fresh"], x[1:2])  # labels continue after the saved ones
    assert loaded.search(x[1:2], 1)[0][0][0] == "fresh"
    # a new label must not reuse a saved one: m0 (label 0) is still m0, and stays when
    # "fresh" goes
    assert loaded.search(x[:1], 1)[0][0][0] == "m0"
    tomb = 1 if kind == "hnsw" else 0  # HNSW keeps removed vectors as tombstones
    assert len(loaded) == 400 and loaded.ntotal == 400 + tomb
    np.testing.assert_allclose(loaded.reconstruct(["m0", "fresh"]), x[[0, 1]], atol=1e-6)
    assert loaded.remove(["fresh"]) == 1
    assert len(loaded) == 399 and "m0" in loaded and "fresh" not in loaded
    assert loaded.search(x[:1], 1)[0][0][0] == "m0"
    np.testing.assert_allclose(loaded.reconstruct(["m0"]), x[:1], atol=1e-6)
    assert loaded.ntotal == 399 + 2 * tomb
    assert set(loaded.ids()) == set(index.ids())


def test_load_rejects_missing_or_corrupt(tmp_path):
    with pytest.raises(IndexError_):
        load_index(tmp_path)
    (tmp_path / "index.json").write_text('{"format": "other"}')
    with pytest.raises(IndexError_):
        FaissIndex.load(tmp_path)


def test_input_validation():
    index = FaissIndex(8, kind="flat")
    with pytest.raises(ValueError):
        index.add(["a"], np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError):
        index.add(["a", "a"], unit(2, 8))
    with pytest.raises(ValueError):
        index.add(["a"], unit(2, 8))
    index.add(["a", "b"], unit(2, 8))
    with pytest.raises(ValueError):
        index.search(unit(2, 8), 1, exclude=[set()])
    assert FaissIndex(8).search(unit(1, 8), 3) == [[]]  # empty index


def test_ivf_trains_on_small_first_batch():
    index = FaissIndex(16, kind="ivf", expected_size=100_000)
    index.add(ids(200), unit(200))
    assert index.params.nlist is not None and index.params.nlist <= 200 // 39
    assert index.search(unit(200)[:1], 1)[0][0][0] == "m0"


def test_ivf_without_an_expected_size_is_sized_by_its_first_batch():
    """``FaissIndex(d, kind='ivf')`` knows no size when created: its lists are sized from the
    first batch added (about sqrt(n)), not left at one list (a flat search at IVF's cost)."""
    index = FaissIndex(16, kind="ivf")
    index.add(ids(10_000), unit(10_000))
    assert index.params.nlist == 100 and index.params.nprobe == 16
    assert index.search(unit(10_000)[:1], 1)[0][0][0] == "m0"
    forced = FaissIndex(16, kind="ivf", params=IndexParams(nlist=4))  # an explicit nlist wins
    forced.add(ids(10_000), unit(10_000))
    assert forced.params.nlist == 4


def test_registry_creates_faiss():
    index = create_index("faiss", dim=4, kind="flat")
    assert isinstance(index, FaissIndex) and index.dim == 4


def test_missing_faiss_names_the_base_package_not_the_gpu_extra(monkeypatch):
    import sys

    from llmrank.errors import MissingExtraError
    from llmrank.index import faiss_index

    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    with pytest.raises(MissingExtraError, match="pip install faiss-cpu") as exc:
        faiss_index._faiss()
    assert "llmrank[gpu]" not in str(exc.value)


@pytest.mark.parametrize("kind", KINDS)
def test_ids_given_as_numbers_are_the_same_ids_everywhere(kind):
    """add() stores ids as strings (dataset ids often arrive as ints from a dataframe):
    remove, exclude and reconstruct must find them the same way, or a removed item comes
    back."""
    x = unit(300)
    index = FaissIndex.build(np.arange(300), x, kind=kind)
    assert index.remove(np.array([0, 1])) == 2 and len(index) == 298
    found = {i for i, _ in index.search(x[:2], 10)[0]}
    assert not found & {"0", "1"}
    hits = index.search(x[2:3], 3, exclude=[{2}])[0]
    assert "2" not in {i for i, _ in hits}
    np.testing.assert_allclose(index.reconstruct([5]), x[5:6], atol=1e-6)
    # membership too: the retrievers skip history ids that are not ``in`` the index
    assert 5 in index and np.int64(5) in index and 0 not in index and "5" in index


def test_ivf_with_an_explicit_nlist_but_no_nprobe_derives_nprobe():
    """IndexParams says an nprobe of None is derived from the size; with an explicit nlist and
    no expected size it stayed None and searches probed one list (recall@10 ~0.36 here)."""
    x = unit(20_000)
    index = FaissIndex(16, kind="ivf", params=IndexParams(nlist=64), use_gpu=False)
    index.add(ids(20_000), x)
    assert index.params.nlist == 64 and index.params.nprobe == 16
    q = x[:100]
    truth = np.argsort(-(q @ x.T), axis=1)[:, :10]
    found = index.search(q, 10)
    recall = np.mean([len({i for i, _ in h} & {f"m{j}" for j in t}) / 10
                      for h, t in zip(found, truth, strict=True)])
    assert recall > 0.8
