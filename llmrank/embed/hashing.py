"""A deterministic, dependency-free embedder: signed feature hashing of words and character
trigrams. It exists so that tests and offline smoke runs can build real indexes in
milliseconds; its vectors carry lexical overlap only, not meaning."""

from __future__ import annotations

import re
import zlib

import numpy as np

from llmrank.embed.base import EncodeCallback, normalize_rows

_WORD = re.compile(r"\w+", re.UNICODE)
_MODEL_ID = re.compile(r"hashing-v1-(\d+)")


class HashingEmbedder:
    """Bag of words + character trigrams hashed into ``dim`` signed buckets (crc32, so the
    vectors are identical across processes and machines, unlike Python's ``hash``)."""

    name = "hashing"

    def __init__(self, dim: int | None = None, model: str = "default", **_: object) -> None:
        if dim is None:  # a recorded model id ('hashing-v1-64') names its dim; else 256
            named = _MODEL_ID.fullmatch(model)
            dim = int(named.group(1)) if named else 256
        if dim < 8:
            raise ValueError(f"dim must be >= 8, got {dim}")
        self._dim = int(dim)
        self.model_id = f"hashing-v1-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        feats = [f"w:{w}" for w in words]
        for w in words:
            padded = f"<{w}>"
            feats.extend(f"c:{padded[i:i + 3]}" for i in range(max(1, len(padded) - 2)))
        return feats

    def _encode_one(self, text: str, row: np.ndarray) -> None:
        for feat in self._features(text):
            h = zlib.crc32(feat.encode("utf-8"))
            sign = 1.0 if (h >> 31) & 1 else -1.0
            row[h % self._dim] += sign

    def encode(
        self,
        texts: list[str],
        *,
        batch_size: int = 64,
        progress: bool = False,
        callback: EncodeCallback | None = None,
    ) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            self._encode_one(text, out[i])
            if callback is not None and ((i + 1) % batch_size == 0 or i + 1 == len(texts)):
                callback(i + 1)
        return normalize_rows(out)
