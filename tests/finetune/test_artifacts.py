"""Adapters as artifacts: manifest, registry names, prompt settings, merging."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmrank.errors import ModelError
from llmrank.finetune.artifacts import (
    MANIFEST,
    AdapterManifest,
    list_adapters,
    merge_adapter,
    prompt_spec_for,
    publish,
    read_manifest,
    save_adapter,
)
from llmrank.finetune.config import PromptSpec


def _random_adapter(model_dir, dest, prompt: PromptSpec):
    """A LoRA with non-zero random weights on the tiny model, saved with a manifest."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    manifest = AdapterManifest(
        name="rand", base_model=str(model_dir), base_model_path=str(model_dir), template="rank",
        template_version="1.0.0", prompt=dataclasses.asdict(prompt), mode="sft", seed=0)
    return save_adapter(model, dest, manifest)


@pytest.fixture()
def adapter(tiny_model_dir, tmp_path):
    return _random_adapter(tiny_model_dir, tmp_path / "rand",
                           PromptSpec(max_history=7, candidate_text="full", max_prompt_tokens=900))


def test_manifest_roundtrip_and_prompt_spec(adapter):
    assert (adapter / MANIFEST).is_file() and (adapter / "adapter_config.json").is_file()
    assert not adapter.with_name("rand.partial").exists()
    m = read_manifest(adapter)
    assert m.created and m.format_version == 1
    assert prompt_spec_for(adapter) == PromptSpec(template="rank@1.0.0", max_history=7,
                                                  candidate_text="full", max_prompt_tokens=900)
    assert prompt_spec_for(None) == PromptSpec()


@pytest.mark.parametrize("text", ["{not json", '{"name": "x"}', "[1, 2]", "\udcff"])
def test_a_broken_manifest_is_a_model_error_and_the_reranker_falls_back(adapter, text, caplog):
    """A truncated or hand-edited manifest raised JSONDecodeError / TypeError ('missing 7
    required positional arguments'), which escaped prompt_spec_for (it handles ModelError):
    a reranker with such an adapter failed to start with a traceback."""
    (adapter / MANIFEST).write_text(text, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(ModelError, match="not a valid adapter manifest"):
        read_manifest(adapter)
    assert prompt_spec_for(adapter) == PromptSpec()  # default settings, with a warning


def test_adapter_lora_reads_the_weights_config(adapter):
    """The recipe's lora fields of a saved adapter come from its adapter_config.json (what
    the weights are), whatever its manifest says."""
    from llmrank.finetune.artifacts import adapter_lora
    from llmrank.finetune.config import LoraSpec

    lora = adapter_lora(adapter)
    assert lora == {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
                    "top_layers": 0}
    assert LoraSpec(**lora).r == 4  # usable as a recipe's lora section


def test_publish_then_load_by_name_in_the_backend(adapter, home, tiny_model_dir):
    from llmrank.llm.transformers_backend import TransformersLLM

    dest = publish(adapter, "my-adapter")
    assert dest == home / "adapters" / "my-adapter"
    assert [m.name for m in list_adapters()] == ["rand"]
    llm = TransformersLLM(str(tiny_model_dir), adapter="my-adapter")
    assert llm.adapter == "my-adapter"
    with pytest.raises(ModelError):
        publish(adapter, "../escape")
    with pytest.raises(ModelError):
        read_manifest("no-such-adapter")


def test_merged_model_scores_like_base_plus_adapter(adapter, tmp_path, tiny_model_dir):
    from llmrank.llm.transformers_backend import TransformersLLM

    merged = merge_adapter(adapter, tmp_path / "merged")
    assert (merged / MANIFEST).is_file() and (merged / "config.json").is_file()
    # served without the adapter, the merged model still renders the prompts it learned
    assert prompt_spec_for(None, merged) == prompt_spec_for(adapter) != PromptSpec()
    prompts = ["<|im_start|>user\nPick one<|im_end|>\n<|im_start|>assistant\nAnswer:"]
    labels = [" A", " B", " C"]
    with_adapter = TransformersLLM(str(tiny_model_dir), adapter=str(adapter)).label_logprobs(prompts, labels)
    plain = TransformersLLM(str(merged)).label_logprobs(prompts, labels)
    base = TransformersLLM(str(tiny_model_dir)).label_logprobs(prompts, labels)
    np.testing.assert_allclose(plain, with_adapter, atol=1e-4)
    assert np.abs(base - with_adapter).max() > 1e-3


def test_an_adapter_is_served_with_the_template_version_it_was_trained_on(
        adapter, tmp_path, monkeypatch, prompt_model):
    """A newer version of the template installed later (LLMRANK_PROMPTS_DIR, an upgrade)
    must not reach an adapter trained on rank 1.0.0: the manifest records the version, and
    the reranker's builder renders that one. Before, the prompt spec said only 'rank', so
    the highest version installed was rendered: prompts the adapter never saw."""
    from pathlib import Path

    from llmrank.finetune.prompting import make_builder
    from llmrank.prompts.store import PROMPTS_DIR_ENV

    shipped = (Path(__file__).resolve().parents[2] / "prompts" / "rank.toml").read_text()
    newer = shipped.replace('version = "1.0.0"', 'version = "1.1.0"').replace(
        "You are a recommender system.", "You are a movie recommender.")
    assert newer != shipped
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "rank.toml").write_text(newer)
    monkeypatch.setenv(PROMPTS_DIR_ENV, str(tmp_path / "prompts"))
    assert make_builder(prompt_model, PromptSpec()).template.version == "1.1.0"  # the default
    for spec in (prompt_spec_for(adapter), read_manifest(adapter).prompt_spec()):
        template = make_builder(prompt_model, spec).template
        assert (template.name, template.version) == ("rank", "1.0.0")


def test_publishing_replaces_only_its_own_name_and_refuses_a_non_adapter(adapter, home, tmp_path):
    """publish('x') removed the adapters named 'x.old' and 'x.partial' without asking (its
    scratch names), wrote every concurrent publish of x into the same x.partial, and copied
    any folder, adapter or not, into the registry."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from llmrank.models.resolve import adapters_dir, list_models

    neighbour = publish(adapter, "x.old")
    assert publish(adapter, "x") == adapters_dir() / "x"
    publish(adapter, "x")  # replaced (with a warning)
    assert (neighbour / "adapter_config.json").is_file()
    with pytest.raises(ModelError, match="invalid adapter name"):
        publish(adapter, "x.partial")
    not_adapter = tmp_path / "notes"
    not_adapter.mkdir()
    (not_adapter / "README").write_text("hi")
    with pytest.raises(ModelError, match="holds no adapter"):
        publish(not_adapter, "y")
    assert not (adapters_dir() / "y").exists()
    # the same name published by several threads at once: each from its own staging folder
    copies = []
    for i in range(4):
        shutil.copytree(adapter, tmp_path / f"c{i}")
        copies.append(tmp_path / f"c{i}")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda c: publish(c, "z"), copies))
    assert (adapters_dir() / "z" / "adapter_config.json").is_file() and read_manifest("z").name == "rand"
    assert sorted(p.name for p in adapters_dir().iterdir() if not p.name.endswith(".lock")) == \
        ["x", "x.old", "z"]  # no staging folder left behind
    assert {m.name for m in list_models() if m.kind == "adapter"} == {"x", "x.old", "z"}
