"""build_ranker: bad ranker options in an eval config are a ConfigError (one line, exit 2 in
the CLI), whether the key is unknown or its value is refused."""

from __future__ import annotations

import pytest

from llmrank.errors import ConfigError
from llmrank.eval.api import build_ranker
from llmrank.eval.config import RankerSpec


def test_builds_with_good_options() -> None:
    ranker = build_ranker(RankerSpec(name="itemknn", options={"neighbors": 5}), seed=0)
    assert ranker.neighbors == 5  # type: ignore[attr-defined]


@pytest.mark.parametrize("options", [{"neighbours": 5}, {"tie_break": "sometimes"}])
def test_bad_options_are_a_config_error(options) -> None:
    with pytest.raises(ConfigError, match="ranker 'itemknn': bad options"):
        build_ranker(RankerSpec(name="itemknn", options=options), seed=0)
