"""How the reranker picks its prompt settings (``LLMReranker.from_config``)."""

from __future__ import annotations

import json

from llmrank.config import RerankerConfig
from llmrank.data.itemtext import item_title_genres
from llmrank.llm.fake import FakeLLM
from llmrank.rerank.reranker import LLMReranker


def test_a_merged_model_gets_the_prompt_settings_it_was_trained_with(tmp_path, monkeypatch):
    """``llmrank finetune --merge`` copies the adapter's manifest into the model folder; a
    reranker naming that folder (no adapter) must render the prompts it learned, not the
    config's defaults (history 20 instead of 5, another candidate text)."""
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path / "home"))
    merged = tmp_path / "merged"
    merged.mkdir()
    prompt = {"template": "rank", "max_history": 5, "candidate_text": "genres",
              "max_prompt_tokens": 900}
    (merged / "llmrank_adapter.json").write_text(json.dumps({
        "name": "m", "base_model": "b", "base_model_path": "b", "template": "rank",
        "template_version": "1.0.0", "prompt": prompt, "mode": "sft", "seed": 0}))
    builder = LLMReranker.from_config(RerankerConfig(model=str(merged)), llm=FakeLLM()).builder
    assert (builder.max_history, builder._cap) == (5, 900)
    assert builder.history_text is item_title_genres  # candidate_text 'genres'
    plain = LLMReranker.from_config(RerankerConfig(model=str(tmp_path)), llm=FakeLLM()).builder
    assert plain.max_history == RerankerConfig().max_history  # no manifest: the config's


def test_retrieval_scores_of_another_length_are_a_typed_error():
    """Two scores for three candidates failed inside the blend with a bare IndexError."""
    import pytest

    from llmrank.errors import InvalidRequestError
    from llmrank.records import Item
    from llmrank.rerank.reranker import RerankRequest

    items = [Item(f"i{j}", f"Film {j}") for j in range(3)]
    with pytest.raises(InvalidRequestError, match="2 retrieval scores for 3 candidates"):
        RerankRequest(history=items[:1], candidates=items, retrieval_scores=[0.5, 0.4])
    assert RerankRequest(history=[], candidates=items, retrieval_scores=[0.3, 0.2, 0.1])
