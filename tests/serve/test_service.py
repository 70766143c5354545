"""The serving plumbing around the Recommender: the chat session store."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from llmrank.serve.errors import SessionConflictError
from llmrank.serve.service import SessionStore


@dataclass
class FakeSession:
    session_id: str
    user_id: str | None


def slow_factory(session_id: str, user_id: str | None, history: list[str] | None) -> FakeSession:
    time.sleep(0.05)  # building a session (agent, tools, system prompt) takes a while
    return FakeSession(session_id, user_id)


def test_concurrent_first_turns_of_one_session_share_it():
    """Two requests that open the same new session id at once get one session: the second
    one built must not replace the first (its turn would be lost)."""
    store = SessionStore(slow_factory)  # type: ignore[arg-type]
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: store.get("s1", None), range(2))
    assert a is b and len(store) == 1


def test_concurrent_first_turns_of_two_users_conflict():
    store = SessionStore(slow_factory)  # type: ignore[arg-type]
    barrier = threading.Barrier(2)

    def open_as(user: str) -> object:
        barrier.wait()
        try:
            return store.get("s1", user)
        except SessionConflictError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(open_as, ["u1", "u2"]))
    assert sum(isinstance(r, SessionConflictError) for r in results) == 1
    (session,) = [r for r in results if isinstance(r, FakeSession)]
    assert store.get("s1", session.user_id) is session
    with pytest.raises(SessionConflictError):
        store.get("s1", "u1" if session.user_id == "u2" else "u2")
