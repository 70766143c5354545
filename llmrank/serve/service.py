"""What the HTTP app wraps: one Recommender per process, a model lock, and chat sessions.

Thread-safety (why a lock): FastAPI runs the sync endpoints in a thread pool, but a
Recommender holds one model, one FAISS index and one SQLite connection that are not made for
concurrent use. Every call into the Recommender (and every generation of the local chat model,
which shares the reranker's weights) therefore runs under one re-entrant lock: requests are
served one model call at a time per process. Scale out with more processes (``llmrank serve
--workers N``: each worker process loads its own Recommender) or with the vllm backend, which batches inside the engine; the batch engines
(llmrank.batch) are the way to rank many requests at once. Everything outside the lock (JSON
parsing, validation, session bookkeeping) runs concurrently."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from llmrank.errors import ConfigError, LlmrankError, ModelError, UnknownBackendError
from llmrank.serve.errors import FeatureUnavailableError, SessionConflictError, internal

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from llmrank.chat.session import ChatSession
    from llmrank.recommender import Recommender

log = logging.getLogger(__name__)
T = TypeVar("T")


class SessionStore:
    """Chat sessions by id; the least recently used are dropped past ``limit``."""

    def __init__(self, factory: Callable[[str, str | None, list[str] | None], ChatSession],
                 limit: int = 1000) -> None:
        self._factory = factory
        self._limit = max(1, limit)
        self._sessions: OrderedDict[str, ChatSession] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def _existing(self, session_id: str | None, user_id: str | None) -> ChatSession | None:
        """The stored session ``session_id`` (now the most recent), checked against ``user_id``;
        call under ``self._lock``."""
        session = self._sessions.get(session_id) if session_id else None
        if session is not None:
            if user_id is not None and session.user_id != user_id:
                raise SessionConflictError(f"session {session_id!r} belongs to another user")
            self._sessions.move_to_end(session.session_id)
        return session

    def get(self, session_id: str | None, user_id: str | None,
            history: list[str] | None = None) -> ChatSession:
        """The session ``session_id`` (now the most recent) or a new one for ``user_id``
        (``history`` seeds a new anonymous session; an existing session keeps its own)."""
        with self._lock:
            found = self._existing(session_id, user_id)
            if found is not None:
                return found
        session = self._factory(session_id or uuid.uuid4().hex, user_id, history)  # slow: unlocked
        with self._lock:
            found = self._existing(session.session_id, user_id)  # another request opened it meanwhile
            if found is not None:
                return found
            self._sessions[session.session_id] = session
            while len(self._sessions) > self._limit:
                dropped, _ = self._sessions.popitem(last=False)
                log.info("chat session %s dropped (limit %d)", dropped, self._limit)
        return session


class Service:
    """The Recommender plus what serving needs around it."""

    def __init__(self, recommender: Recommender, *, chat_model: BaseChatModel | None = None,
                 max_sessions: int | None = None) -> None:
        self.recommender = recommender
        self.lock = threading.RLock()  # the model lock (see the module docstring)
        self.started = time.time()
        self._chat_model = chat_model
        self._chat_lock = threading.Lock()
        cfg = recommender.config.chat
        self.sessions = SessionStore(self._new_session, max_sessions or cfg.max_sessions)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the model lock; unexpected errors become a logged InternalError."""
        with self.lock:
            try:
                return fn()
            except LlmrankError:
                raise
            except Exception as exc:
                raise internal(exc) from exc

    # ---- chat --------------------------------------------------------------------------
    def chat_model(self) -> BaseChatModel:
        """Built on first use, so a server without langchain still serves everything else."""
        with self._chat_lock:
            if self._chat_model is None:
                from llmrank._optional import require

                require("langchain", extra="chat")
                from llmrank.chat.factory import make_chat_model

                rec = self.recommender
                try:
                    self._chat_model = make_chat_model(rec.config.chat, rec, lock=self.lock,
                                                       seed=rec.config.seed)
                except (ConfigError, UnknownBackendError, ModelError) as exc:
                    # the server's configuration, not the request: a feature it cannot offer
                    raise FeatureUnavailableError(f"chat is not available on this server: {exc}") from exc
            return self._chat_model

    def _new_session(self, session_id: str, user_id: str | None,
                     history: list[str] | None = None) -> ChatSession:
        from llmrank.chat.session import ChatSession

        cfg = self.recommender.config.chat
        return ChatSession(self.recommender, self.chat_model(), user_id=user_id, history=history,
                           session_id=session_id, lock=self.lock, max_messages=cfg.max_messages,
                           catalog=cfg.catalog)

    # ---- health ------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        rec = self.recommender
        llm = rec.reranker.llm if rec.reranker is not None else None
        retriever = rec.retriever
        index = getattr(retriever, "index", None)
        size = None
        if index is not None:
            try:
                size = len(index)
            except TypeError:
                size = None
        return {
            "status": "ok",
            "uptime_seconds": round(time.time() - self.started, 3),
            "dataset": {"name": rec.dataset.name, "n_items": rec.dataset.n_items,
                        "n_users": rec.dataset.n_users},
            "index": {"loaded": retriever is not None,
                      "retriever": getattr(retriever, "kind", getattr(retriever, "name", None)),
                      "size": size},
            "model": {"loaded": llm is not None, "backend": getattr(llm, "name", None),
                      "model": getattr(llm, "model_id", None), "adapter": getattr(llm, "adapter", None),
                      "reranker": rec.describe_reranker()},
            "policy": getattr(getattr(rec.explore, "policy", None), "name", "greedy"),
            "feedback": getattr(rec.explore, "store", None) is not None,
            "chat": {"backend": rec.config.chat.backend, "ready": self._chat_model is not None,
                     "sessions": len(self.sessions)},
        }
