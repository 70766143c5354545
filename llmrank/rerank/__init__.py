"""LLM reranking: rank prompts (shared with finetuning), one-pass label scoring with
permutation averaging, tournament/window strategies, and the reranker stage."""

from llmrank.rerank.prompt import RankPrompt, RankPromptBuilder
from llmrank.rerank.reranker import LLMReranker, RerankRequest, RerankResult, create_llm
from llmrank.rerank.scorer import LabelScorer, RankInput, RankOutput

__all__ = ["LLMReranker", "LabelScorer", "RankInput", "RankOutput", "RankPrompt", "RankPromptBuilder",
           "RerankRequest", "RerankResult", "create_llm"]
