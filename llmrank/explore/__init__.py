"""Exploration: bandit policies over the reranked list (the ranker/LLM score as the prior,
feedback as evidence), the multi-objective slate step, a replay simulator and off-policy
estimators. ``make_policy`` builds a policy by its registered name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmrank.explore.base import ExploreContext, Policy, Slate
from llmrank.explore.features import ItemFeatures

__all__ = ["ExploreContext", "ItemFeatures", "Policy", "Slate", "make_policy"]


def make_policy(name: str, options: Mapping[str, Any] | None = None, *,
                features: ItemFeatures | None = None) -> Policy:
    """The policy registered as ``name`` with ``options`` (its config fields as a dict)."""
    from llmrank.registry import policies

    policy: Policy = policies.create(name, features=features, **dict(options or {}))
    return policy
