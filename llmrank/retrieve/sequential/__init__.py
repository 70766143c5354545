"""Behavioural retriever: a sequential recommender (SASRec or LRURec) trained on interaction
histories whose user states and item vectors live in one inner-product space, so that
retrieval is a single FAISS search.

Only the config is imported eagerly; everything else imports torch and is loaded on use:
``from llmrank.retrieve.sequential.train import train_sequential``."""

from __future__ import annotations

from llmrank.retrieve.sequential.config import SequentialConfig

__all__ = ["SequentialConfig"]
