"""The openai backend: any OpenAI-compatible completions server (``vllm serve``, llama.cpp's
server, SGLang, ...) behind the LLM interface, over plain httpx.

Prompts are tokenised HERE with the served model's own Hugging Face tokenizer and sent as
token ids, so the server scores exactly the tokens the transformers backend scores (no BOS
added or dropped by a server-side tokenizer) and prompt building, token counts and label
checks are shared with the other backends (HFTokenizerMixin).

Label scoring is one completion of ``max_tokens=1`` per prompt with ``logprobs``: vLLM's
``logprob_token_ids`` extension (a CompletionRequest field since 0.3x, checked against the
vllm 0.32 source) returns the log-prob of every label token exactly; a server without it
returns only its top-N tokens, and a label missing from them gets a floor (the rule is in
openai_response.py, which reads the responses). Values are full-vocabulary log-probs, like
the transformers backend's; the scorer renormalises over the labels. With
``label_token_ids='auto'`` a server that rejects the extension fields is asked again
without them, once, and remembered.

Prompts go several per request (``batch_size``) and several requests at once
(``concurrency`` threads); transport errors, timeouts, 429 and 5xx are retried with
exponential backoff; anything else, and any response that is not what the API promises,
raises ModelError."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np

from llmrank.errors import ModelError, ModelUnavailableError
from llmrank.llm.base import GenerationConfig, NamedAdapters
from llmrank.llm.hf_tokenizer import HFTokenizerMixin, cut_at_stop, load_tokenizer
from llmrank.llm.openai_response import completion_choices, label_row

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_TOKEN_ID_PREFIX = "token_id:"  # vLLM's return_tokens_as_token_ids spelling


class RequestRejected(ModelError):
    """The server answered 4xx (not worth retrying): bad field, unknown model, too long."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


class OpenAILLM(NamedAdapters, HFTokenizerMixin):
    """Options (``reranker.options``): ``base_url`` (default $OPENAI_BASE_URL, else
    http://127.0.0.1:8000/v1), ``served_model`` (the name the server knows; default: ``model``
    when served, else the first base model it lists), ``tokenizer`` (path or HF id of the
    served model's tokenizer; default: ``model`` resolved offline), ``api_key_env``,
    ``timeout`` (s), ``retries``, ``backoff`` (s), ``concurrency``, ``top_logprobs``,
    ``label_token_ids`` ('auto' | True | False), ``token_prompts`` (send token ids, default
    True), ``runtime_lora`` (load adapters through vLLM's /load_lora_adapter)."""

    name = "openai"

    def __init__(self, model: str = "default", adapter: str | None = None, *,
                 base_url: str | None = None, served_model: str | None = None,
                 tokenizer: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_prompt_tokens: int = 2048, batch_size: int = 8, concurrency: int = 4,
                 timeout: float = 60.0, retries: int = 2, backoff: float = 0.5,
                 top_logprobs: int = 20, label_token_ids: bool | str = "auto",
                 token_prompts: bool = True, runtime_lora: bool = False,
                 trust_remote_code: bool = False, transport: httpx.BaseTransport | None = None,
                 **options: Any) -> None:
        if options:
            log.debug("openai backend ignores options %s", sorted(options))
        if label_token_ids not in (True, False, "auto"):
            raise ModelError(f"label_token_ids must be true, false or 'auto', got {label_token_ids!r}")
        self.model_id = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.served_model = served_model
        self.batch_size = max(1, int(batch_size))
        self.concurrency = max(1, int(concurrency))
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.timeout = float(timeout)
        self.top_logprobs = max(1, int(top_logprobs))
        self.label_token_ids = label_token_ids
        self.token_prompts = bool(token_prompts)
        self.runtime_lora = bool(runtime_lora)
        self._max_prompt = int(max_prompt_tokens)
        self.tokenizer = _load_tokenizer(tokenizer or model, trust_remote_code)
        headers = {}
        key = os.environ.get(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=self.base_url + "/", headers=headers,
                                    timeout=self.timeout, transport=transport)
        self.adapter = None
        self._adapters: dict[str, str] = {}
        if adapter:
            self.load_adapter(adapter)

    # ---- HTTP ----------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                 json_reply: bool = True) -> Any:
        """JSON in, JSON out (the text, with ``json_reply=False``: vLLM answers
        /load_lora_adapter with a plain sentence), retried on transport errors, timeouts, 429
        and 5xx."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self._client.request(method, path, json=body)
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout:g}s"
                continue
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code < 400:
                if not json_reply:
                    return resp.text
                try:
                    return resp.json()
                except ValueError:
                    raise ModelError(f"{self.base_url}/{path}: response is not JSON: "
                                     f"{resp.text[:200]!r}") from None
            message = _error_message(resp)
            if resp.status_code not in _RETRY_STATUS:
                raise RequestRejected(resp.status_code, f"{self.base_url}/{path}: {message}")
            last = f"HTTP {resp.status_code}: {message}"
        raise ModelUnavailableError(f"{self.base_url}/{path} failed after {self.retries + 1} attempts: {last}")

    def _model_name(self) -> str:
        """The name requests use: the active adapter, else the served base model."""
        if self.adapter is not None:
            return self.adapter
        if self.served_model is None:
            self.served_model = self._discover()
        return self.served_model

    def _discover(self) -> str:
        data = self._request("GET", "models")
        cards = data.get("data") if isinstance(data, dict) else None
        if not isinstance(cards, list) or not cards or not all(isinstance(c, dict) and "id" in c for c in cards):
            raise ModelError(f"{self.base_url}/models lists no models: {str(data)[:200]}")
        ids = [str(c["id"]) for c in cards]
        base = [c for c in cards if not c.get("parent")] or cards  # vLLM lists LoRA modules with a parent
        card = next((c for c in cards if c["id"] == self.model_id), base[0])
        if isinstance(card.get("max_model_len"), int) and card["max_model_len"] > 1:
            self._max_prompt = min(self._max_prompt, card["max_model_len"] - 1)
        log.info("openai backend: serving model %r (listed: %s)", card["id"], ids)
        return str(card["id"])

    def close(self) -> None:
        self._client.close()

    # ---- prompts -------------------------------------------------------------------------
    def max_prompt_tokens(self) -> int:
        """The configured bound, lowered to the server's ``max_model_len - 1``. The server is
        asked (GET /models, once) on the first call, so prompt builders size their first
        prompt to it; with an explicit ``served_model`` the configured bound is used as is."""
        if self.served_model is None:
            self.served_model = self._discover()
        return self._max_prompt

    def _prompt_payloads(self, prompts: Sequence[str]) -> list[Any]:
        """Token ids (or texts) of each prompt, checked against the bound."""
        limit = self.max_prompt_tokens()
        out: list[Any] = []
        for p in prompts:
            ids = self.prompt_ids(p, limit)
            out.append(ids if self.token_prompts else p)
        return out

    def _map(self, fn: Callable[[list[Any]], list[T]], payloads: list[Any]) -> list[T]:
        """``fn`` over chunks of batch_size payloads, up to ``concurrency`` chunks at once;
        results in input order."""
        chunks = [payloads[i: i + self.batch_size] for i in range(0, len(payloads), self.batch_size)]
        if len(chunks) == 1 or self.concurrency == 1:
            parts = [fn(c) for c in chunks]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chunks))) as pool:
                parts = list(pool.map(fn, chunks))
        return [x for part in parts for x in part]

    # ---- scoring -------------------------------------------------------------------------
    def label_logprobs(self, prompts: list[str], labels: list[str]) -> np.ndarray:
        ids = self.prompt_label_ids(prompts, labels)
        if not prompts:
            return np.zeros((0, len(labels)), dtype=np.float64)
        keys = self._label_keys(labels, ids)
        payloads = self._prompt_payloads(prompts)
        self._model_name()  # discover the served model once, not in every thread
        rows = self._map(lambda chunk: self._score_chunk(chunk, ids, keys), payloads)
        return np.asarray(rows, dtype=np.float64).reshape(len(prompts), len(labels))

    def _label_keys(self, labels: Sequence[str], ids: Sequence[int]) -> dict[str, int]:
        """Every spelling a server may use for a label token -> the label's position."""
        keys: dict[str, int] = {}
        for j, (lab, tid) in enumerate(zip(labels, ids, strict=True)):
            keys[f"{_TOKEN_ID_PREFIX}{tid}"] = j
            keys[lab] = j
            keys[self.tokenizer.decode([tid])] = j
            keys[str(self.tokenizer.convert_ids_to_tokens(tid))] = j
        return keys

    def _score_chunk(self, chunk: list[Any], ids: list[int], keys: dict[str, int]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self._model_name(), "prompt": chunk, "max_tokens": 1,
                                "temperature": 0.0, "logprobs": self.top_logprobs}
        use_ext = self.label_token_ids is not False
        if use_ext:
            body |= {"logprob_token_ids": list(ids), "return_tokens_as_token_ids": True}
        try:
            data = self._request("POST", "completions", body)
        except RequestRejected as exc:
            if self.label_token_ids != "auto" or exc.status not in (400, 422):
                raise
            log.info("server rejected logprob_token_ids (%s); using top-%d logprobs", exc, self.top_logprobs)
            for field in ("logprob_token_ids", "return_tokens_as_token_ids"):
                body.pop(field)
            data = self._request("POST", "completions", body)
            self.label_token_ids = False
        return [label_row(ch, keys, len(ids)) for ch in completion_choices(data, len(chunk))]

    # ---- generation ----------------------------------------------------------------------
    def generate(self, prompts: list[str], config: GenerationConfig) -> list[str]:
        if not prompts:
            return []
        payloads = self._prompt_payloads(prompts)
        self._model_name()
        body: dict[str, Any] = {"max_tokens": int(config.max_new_tokens),
                                "temperature": float(config.temperature), "top_p": float(config.top_p),
                                "seed": int(config.seed)}
        if config.stop:
            body["stop"] = list(config.stop)[:4]  # OpenAI accepts up to 4; the rest are cut here

        def run(chunk: list[Any]) -> list[str]:
            data = self._request("POST", "completions", {"model": self._model_name(), "prompt": chunk, **body})
            texts = []
            for ch in completion_choices(data, len(chunk)):
                text = ch.get("text")
                if not isinstance(text, str):
                    raise ModelError(f"completions choice has no text: {str(ch)[:200]}")
                texts.append(cut_at_stop(text, config.stop))
            return texts

        return self._map(run, payloads)

    # ---- adapters ------------------------------------------------------------------------
    def load_adapter(self, adapter: str, name: str | None = None) -> str:
        """Make ``name`` the model requests ask for. The server must serve the adapter under
        that name (``vllm serve --enable-lora --lora-modules NAME=PATH``), or, with
        ``runtime_lora``, it is loaded through vLLM's /load_lora_adapter (needs
        VLLM_ALLOW_RUNTIME_LORA_UPDATING=1 on the server). Loaded at runtime, an adapter is
        named as in the local backends (``NamedAdapters._name_for``): two runs' ``.../adapter``
        folders get two names, where the second used to be taken for the first."""
        if self.runtime_lora:
            from llmrank.models.resolve import resolve_adapter

            path = resolve_adapter(adapter).resolve()
            name = self._name_for(path, name)
            if name not in self._adapters:
                self._request("POST", "load_lora_adapter", {"lora_name": name, "lora_path": str(path)},
                              json_reply=False)
                self._adapters[name] = str(path)
            self.set_adapter(name)
            return name
        name = name or Path(adapter).name
        if name not in self._adapters:
            self._adapters[name] = adapter
        self.set_adapter(name)
        return name


def _load_tokenizer(source: str, trust_remote_code: bool) -> Any:
    from llmrank.models.resolve import resolve_model

    path = resolve_model(source)
    try:
        return load_tokenizer(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"the openai backend needs the served model's tokenizer locally; cannot load {source!r} "
            f"({path}): {exc}. Set reranker.options.tokenizer to its folder or HF id."
        ) from exc


def _error_message(resp: httpx.Response) -> str:
    """The server's own error text (OpenAI: {"error": {"message": ...}}; vLLM: {"message"})."""
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return str(data)[:300]
