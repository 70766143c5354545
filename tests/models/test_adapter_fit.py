"""Which base model an adapter folder records, and when loading it elsewhere is flagged."""

from __future__ import annotations

import json
import logging

from llmrank.models.adapter_fit import check_adapter_base, trained_on


def _adapter(tmp_path, manifest=None, peft=None):
    folder = tmp_path / "ad"
    folder.mkdir()
    if manifest is not None:
        (folder / "llmrank_adapter.json").write_text(json.dumps(manifest))
    if peft is not None:
        (folder / "adapter_config.json").write_text(json.dumps(peft))
    return folder


def test_the_recorded_base_model_comes_from_either_file(tmp_path):
    ad = _adapter(tmp_path, {"base_model": "default", "base_model_path": "/m/smollm"},
                  {"base_model_name_or_path": "/m/smollm"})
    assert trained_on(ad) == ["default", "/m/smollm", "/m/smollm"]
    (ad / "llmrank_adapter.json").write_text("{broken")  # unreadable: the other file still counts
    assert trained_on(ad) == ["/m/smollm"]


def test_a_match_by_name_or_by_path_passes_and_another_model_warns(tmp_path, caplog):
    model = tmp_path / "model"
    model.mkdir()
    ad = _adapter(tmp_path, {"base_model": "default", "base_model_path": str(model)})
    with caplog.at_level(logging.WARNING, logger="llmrank.models.adapter_fit"):
        assert check_adapter_base(ad, "default")  # the recipe's name
        assert check_adapter_base(ad, "./elsewhere", f"{tmp_path}/./model")  # the same folder
        assert not caplog.records
        assert not check_adapter_base(ad, "qwen2.5-coder-1.5b-instruct", tmp_path / "qwen")
    assert "only fits its base model" in caplog.records[0].getMessage()


def test_an_adapter_that_records_nothing_is_not_flagged(tmp_path):
    assert check_adapter_base(_adapter(tmp_path, peft={"r": 4}), "any-model")
