"""Backends registered by name. Built-ins register exactly as a third-party plugin would:
a name maps to a dotted path ``module:attr``, imported only when that backend is created,
so ``import llmrank`` never imports torch, faiss or vllm."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any, Generic, TypeVar

from llmrank.errors import MissingExtraError, UnknownBackendError

log = logging.getLogger(__name__)

T = TypeVar("T")

_PLUGIN_GROUP = "llmrank.plugins"
_plugins_loaded = False
_plugins_loading = False  # a plugin that asks a registry for names while it is imported
_plugins_lock = threading.RLock()
# entry point name -> "ExcType: message" for plugins that failed to load (llmrank doctor shows them)
broken_plugins: dict[str, str] = {}


class Registry(Generic[T]):
    """A named family of interchangeable backends (LLM, Embedder, VectorIndex, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, str | Callable[..., T]] = {}
        self._requires: dict[str, tuple[str, ...]] = {}

    def register(self, name: str, target: str | Callable[..., T], *,
                 requires: tuple[str, ...] = ()) -> None:
        """Register ``target`` (a factory or a lazy ``'module:attr'`` path) under ``name``.
        ``requires``: the third-party modules the backend imports when created, so
        ``llmrank doctor`` can say whether it would load without importing it."""
        self._entries[name] = target
        self._requires[name] = tuple(requires)

    def requires(self, name: str) -> tuple[str, ...]:
        """The third-party modules ``name`` needs (as registered; () when none were named)."""
        return self._requires.get(name, ())

    def names(self) -> list[str]:
        _load_plugins()
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``; raises with the valid names otherwise."""
        _load_plugins()
        try:
            target = self._entries[name]
        except KeyError:
            valid = ", ".join(self.names()) or "(none)"
            raise UnknownBackendError(
                f"unknown {self.kind} backend {name!r}; valid names: {valid}"
            ) from None
        if isinstance(target, str):
            target = self._import(name, target)
            self._entries[name] = target
        return target

    def _import(self, name: str, path: str) -> Callable[..., T]:
        """The object at a lazy ``'module:attr'``; a module that cannot be imported (a plugin's
        missing dependency) or a misspelt attr is a typed error naming the backend, which the
        CLI turns into one line, not a traceback."""
        module_name, _, attr = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise MissingExtraError(
                f"{self.kind} backend {name!r} cannot be loaded: {module_name} failed to import "
                f"({type(exc).__name__}: {exc}); install what it needs"
            ) from exc
        try:
            return getattr(module, attr)  # type: ignore[no-any-return]
        except AttributeError:
            raise UnknownBackendError(
                f"{self.kind} backend {name!r} is registered as {path!r}, but {module_name} "
                f"has no {attr!r}"
            ) from None

    def create(self, name: str, /, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)


def _load_plugins() -> None:
    """Import modules advertised under the ``llmrank.plugins`` entry point once; they call
    ``register`` on the registries below. A plugin that fails to import is logged and kept
    in ``broken_plugins``: one broken package must not break every command, --help and
    ``llmrank doctor`` included. Another thread waits until they are all loaded (the
    server's first requests run in parallel); a plugin calling back in while it is imported
    does not."""
    global _plugins_loaded, _plugins_loading
    if _plugins_loaded:
        return
    with _plugins_lock:
        if _plugins_loaded or _plugins_loading:
            return
        _plugins_loading = True
        try:
            for entry in metadata.entry_points(group=_PLUGIN_GROUP):
                try:
                    entry.load()
                except Exception as exc:  # any error of third-party code at import time
                    broken_plugins[entry.name] = f"{type(exc).__name__}: {exc}"
                    log.warning("llmrank plugin %r (%s) failed to load and is skipped: %s: %s",
                                entry.name, entry.value, type(exc).__name__, exc)
        finally:
            _plugins_loaded, _plugins_loading = True, False


# The registries of the house. Each built-in is a lazy path: nothing heavy is imported here.
llms: Registry[Any] = Registry("llm")
embedders: Registry[Any] = Registry("embedder")
vector_indexes: Registry[Any] = Registry("vector index")
feedback_stores: Registry[Any] = Registry("feedback store")
batch_engines: Registry[Any] = Registry("batch engine")
retrievers: Registry[Any] = Registry("retriever")
policies: Registry[Any] = Registry("policy")
loaders: Registry[Any] = Registry("dataset loader")
rankers: Registry[Any] = Registry("ranker")


# ---- built-in backends (lazy paths; a plugin calls the same ``register``) ----------------
# ``requires`` names the libraries beyond numpy and the standard library
embedders.register("sentence-transformers", "llmrank.embed.sentence_transformers:SentenceTransformerEmbedder",
                    requires=("sentence_transformers", "torch"))
embedders.register("hashing", "llmrank.embed.hashing:HashingEmbedder")
retrievers.register("text", "llmrank.retrieve.text:TextRetriever")
retrievers.register("sequential", "llmrank.retrieve.sequential.retriever:SequentialRetriever",
                    requires=("torch",))
retrievers.register("fused", "llmrank.retrieve.fused:FusedRetriever", requires=("torch",))
vector_indexes.register("faiss", "llmrank.index.faiss_index:FaissIndex", requires=("faiss",))
llms.register("transformers", "llmrank.llm.transformers_backend:TransformersLLM",
              requires=("torch", "transformers"))
llms.register("vllm", "llmrank.llm.vllm_backend:VllmLLM", requires=("vllm",))
llms.register("openai", "llmrank.llm.openai_backend:OpenAILLM", requires=("httpx",))
llms.register("fake", "llmrank.llm.fake:FakeLLM")  # model-free, for tests and dry runs
feedback_stores.register("sqlite", "llmrank.feedback.sqlite_store:SqliteFeedbackStore")
policies.register("greedy", "llmrank.explore.policies.greedy:GreedyPolicy")
policies.register("egreedy", "llmrank.explore.policies.egreedy:EpsilonGreedyPolicy")
policies.register("softmax", "llmrank.explore.policies.softmax:SoftmaxPolicy")
policies.register("thompson", "llmrank.explore.policies.thompson:ThompsonPolicy")
policies.register("linucb", "llmrank.explore.policies.linear:LinearBanditPolicy")
batch_engines.register("local", "llmrank.batch.local:LocalBatchEngine")
batch_engines.register("ray", "llmrank.batch.ray_engine:RayBatchEngine", requires=("ray",))
rankers.register("random", "llmrank.baselines.random:RandomRanker")
rankers.register("oracle", "llmrank.baselines.random:OracleRanker")
rankers.register("most-popular", "llmrank.baselines.popular:MostPopularRanker")
rankers.register("itemknn", "llmrank.baselines.itemknn:ItemKNNRanker")
rankers.register("als", "llmrank.baselines.mf:ALSRanker", requires=("implicit",))
rankers.register("bpr", "llmrank.baselines.mf:BPRRanker", requires=("implicit",))
rankers.register("retriever", "llmrank.baselines.retriever:RetrieverRanker")
loaders.register("movielens", "llmrank.data.loaders.movielens:load_movielens")
loaders.register("amazon", "llmrank.data.loaders.amazon:load_amazon")
loaders.register("amazon-2018", "llmrank.data.loaders.amazon:load_amazon_2018")
loaders.register("amazon-2023", "llmrank.data.loaders.amazon:load_amazon_2023")
loaders.register("recbole", "llmrank.data.loaders.recbole:load_recbole")
loaders.register("csv", "llmrank.data.loaders.generic:load_csv")
loaders.register("jsonl", "llmrank.data.loaders.generic:load_jsonl")
loaders.register("parquet", "llmrank.data.loaders.generic:load_parquet")
loaders.register("llmrank", "llmrank.data.store:load_saved")
loaders.register("catalog", "llmrank.data.demo_catalog:load_catalog")
