"""SASRec encoder (Kang & McAuley 2018): causal self-attention over the item sequence.

Pre-LayerNorm blocks with learned positions counted from the end of the (left-padded)
window, so the most recent item always has the same position whatever the history length.
Trained with full softmax cross-entropy (not the original sampled BCE), which is what makes
SASRec competitive (Klenitskiy & Vasilev 2023, "Turning Dross Into Gold Loss")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, attn_dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.attn_dropout = attn_dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.attn_dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, length, d))


class _Block(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = _SelfAttention(hidden, heads, attn_dropout)
        self.ln2 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * hidden, hidden)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), allowed))
        return x + self.drop(self.ffn(self.ln2(x)))


class SASRecEncoder(nn.Module):
    """Maps raw item embeddings (B, L, d) of a left-padded window to per-position states."""

    def __init__(self, hidden: int, layers: int, heads: int, dropout: float,
                 attn_dropout: float, max_len: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.max_len = max_len
        self.pos = nn.Embedding(max_len, hidden)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            [_Block(hidden, heads, dropout, attn_dropout) for _ in range(layers)]
        )
        self.ln = nn.LayerNorm(hidden)

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = emb.shape[1]
        positions = torch.arange(self.max_len - length, self.max_len, device=emb.device)
        x = emb * math.sqrt(self.hidden) + self.pos(positions)[None]
        x = self.drop(x) * mask[..., None]
        causal = torch.ones(length, length, dtype=torch.bool, device=emb.device).tril()
        # a query attends to earlier real items and always to itself (padding rows stay finite)
        allowed = (causal[None] & mask[:, None, :]) | torch.eye(length, dtype=torch.bool,
                                                               device=emb.device)[None]
        allowed = allowed[:, None]  # broadcast over heads
        for block in self.blocks:
            x = block(x, allowed)
        return self.ln(x)
