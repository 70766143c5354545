"""Session fixtures of the data-layer tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def catalog():
    """The embedded demo dataset with default settings, built once."""
    from llmrank.data.demo_catalog import load_catalog

    return load_catalog()
