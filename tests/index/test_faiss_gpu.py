"""GPU replica: only where faiss itself sees a GPU (faiss-gpu installed and CUDA present)."""

from __future__ import annotations

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(getattr(faiss, "get_num_gpus", lambda: 0)() == 0, reason="faiss sees no GPU")
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_gpu_search_matches_cpu(kind):
    from llmrank.index.faiss_index import FaissIndex

    x = np.random.default_rng(0).standard_normal((5000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [str(i) for i in range(5000)]
    gpu = FaissIndex.build(ids, x, kind=kind, use_gpu=True)
    cpu = FaissIndex.build(ids, x, kind=kind, use_gpu=False)
    assert gpu.on_gpu() and not cpu.on_gpu()
    q = x[:20]
    excl = [{ids[i]} for i in range(20)]
    g = gpu.search(q, 10, exclude=excl)
    c = cpu.search(q, 10, exclude=excl)
    assert [[i for i, _ in h] for h in g] == [[i for i, _ in h] for h in c]
    gpu.remove(["5"])  # mutation drops the replica; the next search re-clones it
    assert all(i != "5" for i, _ in gpu.search(x[5:6], 5)[0])
