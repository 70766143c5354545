"""Fuzzing the request bodies of every POST endpoint: whatever a client sends (odd k, unicode
and control characters, lone surrogates, duplicate ids, NaN and infinities, long lists, nulls,
extra fields, wrong types, bodies that are not objects), the answer is a 2xx that matches the
endpoint's response model or a 4xx with the {error, message, status} body, never a 5xx; an
acknowledged feedback event is in the store, and sending it again is acknowledged again.

Deterministic (derandomize) and bounded (max_examples per endpoint): a few seconds."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from llmrank.serve.schemas import (
    ChatResponseModel,
    ExplainResponseModel,
    FeedbackResponseModel,
    RecResponseModel,
)

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

# every character class, lone surrogates and control characters included
_chars = st.characters(codec=None, categories=None, exclude_categories=())
odd_text = st.one_of(
    st.text(_chars, min_size=1, max_size=12),
    st.sampled_from(["", " ", "\x00", "\n\t", "é", "🎬", "NaN", "null", "c001 ", " c001", "C001",
                     "u001\x00", "x" * 200]),
    st.text(st.characters(categories=["Cs", "Cc"]), min_size=1, max_size=3),  # lone surrogates
)
_catalog = st.sampled_from(["c001", "c002", "c010", "c170", "c198", "c200"])
item_ids = st.integers(0, 3).flatmap(lambda i: odd_text if i == 0 else _catalog)  # mostly in the catalog
user_ids = st.one_of(st.sampled_from(["u001", "u002", "u003", "nobody"]), odd_text)
numbers = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0, -1, 1, 10, 100, 101, 500, 501, 10_000, 10_001, 2**31, 2**63, 2**64, -(2**63),
                     10**30, 1.0, 1.5, 1e308, -1e308, 1e-320]),
    st.floats(allow_nan=True, allow_infinity=True),
)
counts = st.one_of(st.integers(1, 5), st.sampled_from([1, 2, 99, 100, 499, 500]))
scalars = st.one_of(st.none(), st.booleans(), numbers, odd_text, st.just("x" * 5000))


def id_lists(ids: st.SearchStrategy[Any], *, min_size: int = 0) -> st.SearchStrategy[Any]:
    """Short lists with duplicates, and long ones up to and past every bound."""
    return st.one_of(
        st.lists(ids, min_size=min_size, max_size=6),
        st.lists(ids, min_size=max(min_size, 1), max_size=6),
        st.builds(lambda i, n: [i] * n, ids, st.sampled_from([2, 100, 101, 501, 2001, 5000])),
        st.builds(lambda n: [f"c{j % 200 + 1:03d}" for j in range(n)],
                  st.sampled_from([99, 100, 101, 499, 500, 501, 2000, 2001])),
    )


wrong = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(odd_text, scalars, max_size=2),
                  id_lists(item_ids))
filters = st.fixed_dictionaries({}, optional={
    "allow": st.one_of(st.none(), id_lists(item_ids)),
    "deny": id_lists(item_ids),
    "attributes": st.dictionaries(st.one_of(st.sampled_from(["genre", "year"]), odd_text),
                                  st.one_of(st.lists(odd_text, max_size=3), st.just(["Comedy", "Drama"])),
                                  max_size=2),
    "exclude_seen": st.booleans(),
})
REQUEST = {
    "user_id": user_ids,
    "history": id_lists(item_ids),
    "text": st.one_of(odd_text, st.just("space adventure")),
    "k": st.one_of(counts, numbers),
    "n_candidates": st.one_of(st.none(), counts),
    "filters": filters,
    "explain": st.booleans(),
    "explore": st.one_of(st.none(), st.booleans()),
    "request_id": odd_text,
}
# what a body needs (mostly given), what it may have (a plausible but odd value each)
FIELDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "/recommend": ({}, REQUEST),
    "/rerank": ({"candidates": id_lists(item_ids, min_size=1)}, REQUEST),
    "/explain": ({"item_ids": id_lists(item_ids, min_size=1)},
                 {k: REQUEST[k] for k in ("user_id", "history", "text")}),
    "/feedback": ({"item_id": item_ids}, {
        "user_id": user_ids, "kind": st.sampled_from(["click", "rating", "skip", "love", "CLICK"]),
        "value": st.one_of(st.floats(-5, 5), numbers), "request_id": odd_text,
        "position": st.one_of(st.integers(0, 20), numbers),
        "timestamp": st.one_of(st.floats(0, 2e9), numbers),
        "event_id": st.sampled_from(["e1", "e2", "e3", "e4"])}),
    "/chat": ({"message": st.one_of(odd_text, st.just("rocket space"))}, {
        "session_id": st.sampled_from(["s1", "s2", "s3"]), "user_id": user_ids,
        "history": id_lists(item_ids)}),
}


@st.composite
def bodies(draw: st.DrawFn, path: str) -> Any:
    """A body of plausible fields with odd values, then sometimes one field broken: left
    out, null, of a wrong type, or an extra field; sometimes no object at all."""
    required, optional = FIELDS[path]
    body = draw(st.fixed_dictionaries(required, optional=optional))
    mutation = draw(st.sampled_from(["none", "none", "none", "drop", "null", "wrong", "extra", "body"]))
    names = sorted({*required, *optional})
    name = draw(st.sampled_from(names))
    if mutation == "drop":
        body.pop(name, None)
    elif mutation == "null":
        body[name] = None
    elif mutation == "wrong":
        body[name] = draw(wrong)
    elif mutation == "extra":
        body[draw(st.one_of(st.just("colour"), odd_text))] = draw(scalars)
    elif mutation == "body":
        return draw(wrong)
    return body


RESPONSES: dict[str, type[BaseModel]] = {
    "/recommend": RecResponseModel, "/rerank": RecResponseModel, "/explain": ExplainResponseModel,
    "/feedback": FeedbackResponseModel, "/chat": ChatResponseModel,
}


def post(client: Any, path: str, body: Any) -> Any:
    """Post ``body`` as JSON text as a client could write it: NaN and Infinity as the bare
    tokens Python's json writes, lone surrogates as \\u escapes."""
    return client.post(path, content=json.dumps(body).encode("ascii"),
                       headers={"content-type": "application/json"})


def _not_json(token: str) -> Any:
    raise AssertionError(f"{token} in a response: not JSON")


def check(r: Any, path: str) -> dict[str, Any]:
    """The contract for any body: no 5xx, and the body the status promises."""
    assert r.status_code < 500, (path, r.status_code, r.text[:500])
    assert "Traceback" not in r.text
    body = json.loads(r.text, parse_constant=_not_json)  # strict JSON: no NaN or Infinity
    if r.status_code == 200:
        RESPONSES[path].model_validate(body)  # the declared response model, field for field
    else:
        assert 400 <= r.status_code < 500
        assert set(body) == {"error", "message", "status"}, body
        assert body["status"] == r.status_code and isinstance(body["message"], str) and body["message"]
    return body


def check_k(sent: Any, body: dict[str, Any]) -> None:
    """A 200 never shows more than the k asked for, nor an item twice."""
    ids = [it["item_id"] for it in body["items"]]
    k = sent.get("k", 10) if isinstance(sent, dict) else 10
    assert len(ids) == len(set(ids)) and len(ids) <= int(k)
    assert [it["position"] for it in body["items"]] == list(range(len(ids)))


@pytest.fixture(scope="module")
def fuzz_clients(catalog_parts, tmp_path_factory):
    """One app with a feedback store, shared by all examples of a test (a server gets every
    request in any order, so state left by one example is part of the fuzzing)."""
    from fastapi.testclient import TestClient
    from serve_fakes import CFG, SearchThenAnswer

    from llmrank.llm.fake import FakeLLM
    from llmrank.recommender import Recommender
    from llmrank.serve import create_app

    ds, retriever = catalog_parts
    path = tmp_path_factory.mktemp("fuzz") / "fb.sqlite"
    rec = Recommender.from_config({**CFG, "feedback": {"path": str(path)}}, dataset=ds,
                                  retriever=retriever, llm=FakeLLM(generations=["Because you liked it."]))
    return TestClient(create_app(rec, chat_model=SearchThenAnswer()), raise_server_exceptions=False), rec


@pytest.mark.parametrize("path", ["/recommend", "/rerank", "/explain", "/chat"])
def test_fuzz_request_bodies(fuzz_clients, path):
    client, _ = fuzz_clients

    @FUZZ
    @given(body=bodies(path))
    def run(body: Any) -> None:
        out = check(post(client, path, body), path)
        if path in ("/recommend", "/rerank") and "items" in out:
            check_k(body, out)

    run()


def test_fuzz_feedback_is_acknowledged_durably_and_idempotently(fuzz_clients):
    client, rec = fuzz_clients
    store = rec.explore.store
    shown = client.post("/recommend", json={"user_id": "u001", "k": 3, "request_id": "fuzz-req"})
    assert shown.status_code == 200

    @FUZZ
    @given(body=bodies("/feedback"), tie=st.booleans())
    def run(body: Any, tie: bool) -> None:
        if tie and isinstance(body, dict):  # sometimes feedback on the slate just shown
            body = {**body, "request_id": "fuzz-req"}
        r = post(client, "/feedback", body)
        out = check(r, "/feedback")
        if r.status_code != 200:
            return
        event_id = out["event_id"]
        (stored,) = [e for e in store.events() if e.event_id == event_id]  # acknowledged: stored once
        assert (stored.item_id, stored.kind, stored.user_id) == (
            body["item_id"], body.get("kind", "click"), body.get("user_id"))
        if stored.value is not None:
            assert math.isfinite(stored.value)
        again = post(client, "/feedback", {**body, "event_id": event_id})  # a client's retry
        assert again.status_code == 200, again.text
        assert check(again, "/feedback")["event_id"] == event_id
        assert sum(e.event_id == event_id for e in store.events()) == 1

    run()
