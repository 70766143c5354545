"""The torch module of the sequential retriever: an item table shared by input and output
(tied embeddings), an encoder (SASRec or LRU) and an optional per-item logit bias.

Scores are inner products, score(u, i) = <state_u, e_i> + b_i = <[state_u, 1], [e_i, b_i]>,
so a user vector [state, 1] and item vectors [e_i, b_i] go into a FAISS inner-product index
and retrieval is one search. Tied embeddings matter for fusion: an item vector built from
text can also be fed back as an input embedding when that item appears in a history."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmrank.retrieve.sequential.config import SequentialConfig

PAD = 0  # token 0 is padding; dataset item code c is token c + 1


class SequentialNet(nn.Module):
    def __init__(self, n_items: int, config: SequentialConfig) -> None:
        super().__init__()
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1, config.hidden, padding_idx=PAD)
        self.bias = nn.Parameter(torch.zeros(n_items + 1), requires_grad=config.item_bias)
        self.encoder: nn.Module
        if config.model == "sasrec":
            from llmrank.retrieve.sequential.sasrec import SASRecEncoder

            self.encoder = SASRecEncoder(config.hidden, config.layers, config.heads,
                                         config.dropout, config.attn_dropout, config.max_len)
        else:
            from llmrank.retrieve.sequential.lru import LRUEncoder

            self.encoder = LRUEncoder(config.hidden, config.layers, config.dropout,
                                      config.attn_dropout)
        self._init_weights()

    def _init_weights(self, std: float = 0.02) -> None:
        """Truncated normal (+-2 std) for weights, as in BERT4Rec/LRURec; LayerNorms and the
        LRU's own parametrisation keep their initialisation."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.items.weight[PAD].zero_()

    # ---- encoding ----------------------------------------------------------------------
    def states(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-position states (B, L, d) of left-padded token windows (B, L)."""
        return self.encoder(self.items(tokens), tokens != PAD)

    def states_from_embeddings(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-position states from given input embeddings (fusion feeds text-derived vectors
        of items the table does not know)."""
        return self.encoder(emb, mask)

    # ---- scoring -----------------------------------------------------------------------
    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """Scores of every item (columns = dataset item codes) for states (..., d)."""
        return F.linear(states, self.items.weight[1:], self.bias[1:])

    def loss(self, inputs: torch.Tensor, labels: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Mean full-softmax cross-entropy over every non-padding position (sequence-to-
        sequence training: each prefix predicts its next item). Positions are processed in
        chunks so that (positions x catalog) logits stay bounded for large catalogs."""
        states = self.states(inputs)
        keep = labels != PAD
        flat_states = states[keep]
        flat_labels = labels[keep] - 1
        total = flat_states.new_zeros(())
        for start in range(0, len(flat_labels), chunk):
            logits = self.logits(flat_states[start: start + chunk])
            total = total + F.cross_entropy(logits, flat_labels[start: start + chunk],
                                            reduction="sum")
        return total / max(1, len(flat_labels))

    def item_matrix(self) -> torch.Tensor:
        """(n_items, d + 1) FAISS item vectors [e_i, b_i] in dataset-code order."""
        return torch.cat((self.items.weight[1:], self.bias[1:, None]), dim=1)
