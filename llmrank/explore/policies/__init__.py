"""Exploration policies, registered by name in ``llmrank.registry.policies``."""
