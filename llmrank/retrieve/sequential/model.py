"""A trained sequential model as an artefact: network + config + item vocabulary.

It turns histories (dataset item codes) into user vectors and exposes the item vectors, both
in the (d + 1)-dimensional inner-product space that goes into FAISS. Saved as a folder
(``config.json``, ``items.json``, ``weights.pt``) that sits inside the retriever's index
folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrank import devices
from llmrank.errors import ModelError
from llmrank.retrieve.sequential.config import SequentialConfig
from llmrank.retrieve.sequential.net import SequentialNet
from llmrank.retrieve.sequential.windows import query_tokens

log = logging.getLogger(__name__)

WEIGHTS = "weights.pt"
CONFIG = "config.json"
ITEMS = "items.json"
META = "meta.json"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when torch sees a GPU (training then uses it), else the CPU."""
    return torch.device(devices.resolve_device(name))


def _load_device(asked: str | None, trained_on: str, folder: Path) -> torch.device:
    """Where a loaded model runs: the caller's device, else the one it was trained with. A
    model trained on a GPU machine and served on a CPU one falls back to the CPU (with a
    warning) instead of failing; a device the caller asks for is never swapped."""
    if asked is None and trained_on.startswith("cuda") and not torch.cuda.is_available():
        log.warning("%s was trained on %s; no GPU here, loading it on the CPU", folder, trained_on)
        return torch.device("cpu")
    return resolve_device(asked or trained_on)


class SequentialModel:
    """Network, config and the item ids (position = dataset item code = column of scores)."""

    def __init__(self, net: SequentialNet, config: SequentialConfig, item_ids: Sequence[str],
                 meta: dict[str, Any] | None = None) -> None:
        if net.n_items != len(item_ids):
            raise ModelError(f"network has {net.n_items} items, vocabulary {len(item_ids)}")
        self.net = net
        self.config = config
        self.item_ids = list(item_ids)
        self.meta = dict(meta or {})
        self._index = {iid: c for c, iid in enumerate(self.item_ids)}

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dim(self) -> int:
        """Dimension of user and item vectors in the index (hidden + 1 for the bias)."""
        return self.config.hidden + 1

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def codes(self, item_ids: Sequence[str]) -> np.ndarray:
        """Item codes of known ids; unknown ids are dropped (they have no trained vector)."""
        return np.fromiter((self._index[i] for i in item_ids if i in self._index), np.int64)

    def has_item(self, item_id: str) -> bool:
        return item_id in self._index

    # ---- vectors -----------------------------------------------------------------------
    @torch.no_grad()
    def user_vectors(self, histories: Sequence[np.ndarray], batch_size: int | None = None
                     ) -> np.ndarray:
        """(len(histories), d + 1) float32 query vectors [state, 1] from item-code histories.
        An empty history gives [0, 1]: items are then ranked by their learned bias alone
        (with ``item_bias`` off every item scores 0: no order at all)."""
        self.net.eval()
        bs = batch_size or self.config.eval_batch_size
        out = np.zeros((len(histories), self.dim), dtype=np.float32)
        out[:, -1] = 1.0
        nonempty = [i for i, h in enumerate(histories) if len(h)]
        for start in range(0, len(nonempty), bs):
            rows = nonempty[start: start + bs]
            tokens = torch.from_numpy(query_tokens([histories[r] for r in rows],
                                                   self.config.max_len)).to(self.device)
            states = self.net.states(tokens)[:, -1]
            out[rows, :-1] = states.float().cpu().numpy()
        return out

    @torch.no_grad()
    def user_vectors_from_embeddings(self, sequences: Sequence[np.ndarray],
                                     batch_size: int | None = None) -> np.ndarray:
        """Like ``user_vectors`` but from input embeddings (one (len, hidden) array per
        history): the fused retriever feeds text-derived vectors of items the model never
        saw. Only the last ``max_len`` rows of each sequence are used."""
        self.net.eval()
        bs = batch_size or self.config.eval_batch_size
        d, length = self.config.hidden, self.config.max_len
        out = np.zeros((len(sequences), self.dim), dtype=np.float32)
        out[:, -1] = 1.0
        nonempty = [i for i, s in enumerate(sequences) if len(s)]
        for start in range(0, len(nonempty), bs):
            rows = nonempty[start: start + bs]
            emb = np.zeros((len(rows), length, d), dtype=np.float32)
            mask = np.zeros((len(rows), length), dtype=bool)
            for j, r in enumerate(rows):
                tail = np.asarray(sequences[r], dtype=np.float32)[-length:, :d]
                emb[j, length - len(tail):] = tail
                mask[j, length - len(tail):] = True
            states = self.net.states_from_embeddings(
                torch.from_numpy(emb).to(self.device), torch.from_numpy(mask).to(self.device))
            out[rows, :-1] = states[:, -1].float().cpu().numpy()
        return out

    @torch.no_grad()
    def input_embeddings(self, codes: np.ndarray) -> np.ndarray:
        """(len(codes), hidden) trained item embeddings (the input side of the tied table)."""
        idx = torch.as_tensor(np.asarray(codes, dtype=np.int64) + 1, device=self.device)
        return self.net.items(idx).float().cpu().numpy()

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        """(n_items, d + 1) float32 item vectors [e_i, b_i] in code order."""
        return self.net.item_matrix().float().cpu().numpy().astype(np.float32)

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(len(histories), n_items) inner-product scores (nothing masked)."""
        return self.user_vectors(histories) @ self.item_vectors().T

    # ---- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        # an ensemble saved here before would be what load() finds (it looks for this first)
        (folder / "ensemble.json").unlink(missing_ok=True)
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        torch.save(state, folder / WEIGHTS)
        (folder / CONFIG).write_text(json.dumps(self.config.to_dict(), indent=2))
        (folder / ITEMS).write_text(json.dumps(self.item_ids))
        (folder / META).write_text(json.dumps(self.meta, indent=2, default=str))
        log.info("saved sequential model (%d items) to %s", self.n_items, folder)
        return folder

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> SequentialModel:
        folder = Path(path)
        if (folder / "ensemble.json").is_file():  # written by EnsembleModel.save
            from llmrank.retrieve.sequential.ensemble import EnsembleModel

            return EnsembleModel.load(folder, device)
        missing = [n for n in (WEIGHTS, CONFIG, ITEMS) if not (folder / n).is_file()]
        if missing:
            raise ModelError(f"{folder} is not a sequential model folder (missing {missing})")
        config = SequentialConfig.from_dict(json.loads((folder / CONFIG).read_text()))
        item_ids = json.loads((folder / ITEMS).read_text())
        meta = json.loads((folder / META).read_text()) if (folder / META).is_file() else {}
        net = SequentialNet(len(item_ids), config)
        net.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True))
        net.to(_load_device(device, config.device, folder)).eval()
        return cls(net, config, item_ids, meta)
