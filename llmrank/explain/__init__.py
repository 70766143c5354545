"""Grounded, validated explanations for shown items (model text or a factual fallback)."""

from llmrank.explain.explainer import Explainer, Explanation
from llmrank.explain.fallback import fallback_explanation, shared_terms
from llmrank.explain.validate import Verdict, validate_explanation

__all__ = ["Explainer", "Explanation", "Verdict", "fallback_explanation", "shared_terms",
           "validate_explanation"]
