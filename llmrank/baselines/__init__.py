"""Reference rankers every new model must beat, trained only on what the split makes
visible at the stage being predicted. Registered in ``llmrank.registry.rankers``:
random, most-popular, itemknn, als, bpr, retriever (adapter), oracle (harness check)."""

from llmrank.baselines.itemknn import ItemKNNRanker
from llmrank.baselines.mf import ALSRanker, BPRRanker
from llmrank.baselines.popular import MostPopularRanker
from llmrank.baselines.random import OracleRanker, RandomRanker
from llmrank.baselines.retriever import RetrieverRanker

__all__ = [
    "ALSRanker",
    "BPRRanker",
    "ItemKNNRanker",
    "MostPopularRanker",
    "OracleRanker",
    "RandomRanker",
    "RetrieverRanker",
]
