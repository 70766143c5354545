"""End-to-end scenarios: the pieces chained the way a user chains them, through the public
API, the CLI and HTTP (embedded catalog, hashing embedder, fake or tiny LLM; offline).

Each module's own tests live beside it; these check the seams between them: what one door
writes (an impression, an index folder, an adapter) is what the next one reads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmrank.cli.main import app as cli
from llmrank.feedback import FeedbackEvent
from llmrank.llm.fake import FakeLLM
from llmrank.recommender import Recommender
from llmrank.records import RecRequest

runner = CliRunner()

BASE: dict[str, Any] = {"embedder": {"backend": "hashing", "cache": False},
                        "reranker": {"backend": "fake"}}
USERS = ["u001", "u002", "u003", "u004", "u005", "u006"]


def _invoke(*args: str) -> Any:
    res = runner.invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, f"llmrank {' '.join(map(str, args))} -> {res.exit_code}: {res.output}"
    return res


def _json(*args: str) -> Any:
    return json.loads(_invoke(*args, "--json").stdout)


@pytest.fixture(scope="module")
def catalog_parts():
    """The embedded catalog and a hashing-embedder text retriever, shared (built once)."""
    rec = Recommender.from_config(BASE, llm=FakeLLM())
    return rec.dataset, rec.retriever


# ---- 1. the feedback loop ------------------------------------------------------------------
def _multiplier(rec: Recommender, user: str, item: str, candidates: list[tuple[str, float]]) -> float:
    """The Thompson posterior mean of the clicked item's multiplier (gamma model: a / b)."""
    from llmrank.explore.base import ExploreContext
    from llmrank.explore.policies.base import Request

    policy = rec.explore.policy  # type: ignore[union-attr]
    req = Request.make(candidates, ExploreContext(user_id=user), policy.features)
    a, b, _ = policy.posterior(req)
    return float(a[req.items.index(item)] / b[req.items.index(item)])


def test_feedback_loop_learn_ope_pairs_export_import(tmp_path, catalog_parts):
    ds, retriever = catalog_parts
    store = tmp_path / "fb.sqlite"
    cfg = {**BASE, "policy": {"name": "thompson",
                              "options": {"settle_seconds": 0, "learn_every_seconds": -1}},
           "feedback": {"path": str(store)}}
    rec = Recommender.from_config(cfg, dataset=ds, retriever=retriever, llm=FakeLLM())
    assert rec.explore is not None and rec.explore.policy.name == "thompson"

    clicked: dict[str, str] = {}  # request_id -> the item clicked in it
    shown: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for rnd in range(2):
        for user in USERS:
            resp = rec.recommend(user, k=5)
            assert resp.policy == "thompson" and len(resp.items) == 5
            assert all(0 < it.propensity <= 1 for it in resp.items)  # type: ignore[operator]
            shown[resp.request_id] = [it.item_id for it in resp.items]
            owner[resp.request_id] = user
            item = resp.items[(rnd + len(clicked)) % 5].item_id
            ack = rec.feedback(FeedbackEvent(user, item, "click", request_id=resp.request_id))
            assert ack
            clicked[resp.request_id] = item
    target_req = next(iter(clicked))
    target = clicked[target_req]
    user0 = USERS[0]
    cands = [(c.item_id, c.score) for c in retriever.retrieve(history=ds.history(user0), k=20)]
    if target not in [i for i, _ in cands]:
        cands.append((target, min(s for _, s in cands)))
    before = _multiplier(rec, user0, target, cands)

    assert rec.learn() == len(clicked)  # settle_seconds = 0: every impression is settled
    counts = rec.explore.policy.item_counts  # type: ignore[union-attr]
    assert counts[target][0] >= 1.0  # its click was counted
    assert _multiplier(rec, user0, target, cands) > before  # and its posterior rose
    never_clicked = {i for items in shown.values() for i in items} - set(clicked.values())
    assert never_clicked and all(counts[i][0] == 0 and counts[i][1] > 0 for i in never_clicked)
    assert rec.learn() == 0  # nothing new to fold in

    # off-policy estimate of greedy on those logs
    body = _json("feedback", "ope", "--store", store, "--policy", "greedy", "--settle", "0",
                 "--n-boot", "50")
    assert body["rounds"] == len(clicked) and body["skipped"] == 0
    assert body["estimates"] and all(math.isfinite(e["value"]) for e in body["estimates"].values())

    # DPO pairs: the chosen item of every pair is the one clicked in that impression
    pairs_file = tmp_path / "pairs.jsonl"
    body = _json("feedback", "pairs", "--store", store, "--out", pairs_file, "--settle", "0")
    pairs = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    # 'shown' negatives: the other shown items, less any item that user clicked anywhere
    liked = {u: {clicked[r] for r in clicked if owner[r] == u} for u in USERS}
    expected = sorted((r, clicked[r], i) for r in clicked for i in shown[r] if i not in liked[owner[r]])
    assert body["pairs"] == len(pairs) == len(expected) > 0
    assert sorted((p["request_id"], p["chosen"], p["rejected"]) for p in pairs) == expected

    # export -> import into a fresh store: the same counts
    dump = tmp_path / "fb.jsonl"
    exported = _json("feedback", "export", "--store", store, "--out", dump)
    assert exported["impressions"] == len(clicked) and exported["events"] == len(clicked)
    fresh = tmp_path / "fresh.sqlite"
    imported = _json("feedback", "import", dump, "--store", fresh)
    assert imported["skipped"] == 0
    assert _json("feedback", "stats", "--store", fresh) | {"store": None} == \
        _json("feedback", "stats", "--store", store) | {"store": None}


# ---- 2. index once, serve many ---------------------------------------------------------------
def test_index_once_serve_many(tmp_path, monkeypatch):
    import llmrank.retrieve.store as store

    folder = tmp_path / "index"
    built = _json("index", "build", "--dataset", "catalog", "--embedder", "hashing", "--out", folder)
    assert Path(built["path"]) == folder and built["manifest"]["n_items"] == 200

    def no_rebuild(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the index folder was given: nothing may be built")

    monkeypatch.setattr(store, "build_retriever", no_rebuild)
    rec = Recommender.from_config({**BASE, "index": {"path": str(folder)}})
    api = rec.recommend("u001", k=5)
    assert len(api.items) == 5

    cli_resp = _json("recommend", "--user", "u001", "-k", "5", "--index", folder, "--backend", "fake")
    assert [it["item_id"] for it in cli_resp["items"]] == [it.item_id for it in api.items]

    requests = tmp_path / "in.jsonl"
    requests.write_text("\n".join([json.dumps({"user_id": "u001", "k": 5}), "{not json",
                                   json.dumps({"user_id": "nobody-here", "k": 5}),
                                   json.dumps({"user_id": "u002", "k": 5})]) + "\n")
    out = tmp_path / "out.jsonl"
    report = _json("rerank", requests, out, "--index", folder, "--backend", "fake")
    assert report["done"] == 2 and len(report["failed"]) == 2
    rows = {r["line"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {1, 4}
    assert rows[1]["items"][0]["item_id"] == api.items[0].item_id  # same top item as the API/CLI
    errors = {r["line"]: r for r in map(json.loads, Path(f"{out}.errors.jsonl").read_text().splitlines())}
    assert set(errors) == {2, 3}
    assert errors[2]["error"] == "MalformedLineError" and errors[3]["error"] == "UnknownUserError"
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["complete"] is True and meta["total"] == 4 and meta["done"] == 2 and meta["failed"] == 2


# ---- 3. HTTP ---------------------------------------------------------------------------------
def test_http_recommend_then_feedback_is_stored(tmp_path, catalog_parts):
    from fastapi.testclient import TestClient

    from llmrank.feedback.sqlite_store import SqliteFeedbackStore
    from llmrank.serve import create_app

    ds, retriever = catalog_parts
    path = tmp_path / "fb.sqlite"
    rec = Recommender.from_config({**BASE, "feedback": {"path": str(path)}}, dataset=ds,
                                  retriever=retriever, llm=FakeLLM())
    client = TestClient(create_app(rec), raise_server_exceptions=False)

    res = client.post("/recommend", json={"user_id": "u003", "k": 4})
    assert res.status_code == 200, res.text
    body = res.json()
    rid, item = body["request_id"], body["items"][1]["item_id"]
    click = {"user_id": "u003", "item_id": item, "kind": "click", "request_id": rid, "event_id": "ev-1"}
    res = client.post("/feedback", json=click)
    assert res.status_code == 200, res.text
    assert res.json()["event_id"] == "ev-1"
    assert client.post("/feedback", json=click).status_code == 200  # a retry is idempotent

    fb = SqliteFeedbackStore(path)
    try:
        imp = fb.impression(rid)
        assert imp is not None and imp.user_id == "u003"
        assert list(imp.items) == [it["item_id"] for it in body["items"]]
        events = list(fb.events(request_id=rid))
        assert [(e.event_id, e.item_id, e.kind) for e in events] == [("ev-1", item, "click")]
    finally:
        fb.close()

    res = client.post("/feedback", json={**click, "kind": "skip"})
    assert res.status_code == 409, res.text
    res = client.post("/feedback", json={**click, "item_id": body["items"][0]["item_id"]})
    assert res.status_code == 409, res.text


# ---- 4. adapter round trip -------------------------------------------------------------------
def _tiny_finetune(model_dir: Path, out: Path, **overrides: Any) -> Path:
    """Two LoRA steps of the tiny model on the catalog; the run's adapter folder."""
    from llmrank.finetune import finetune, load_recipe

    recipe = load_recipe(None, {
        "base_model": str(model_dir), "out": str(out), "name": "e2e", "adapter_name": None,
        "data.dataset": "catalog", "data.kcore": 0,
        "prompt.max_prompt_tokens": 4096, "prompt.max_history": 5,
        "examples.max_users": 8, "examples.per_user": 1, "examples.n_candidates": 5,
        "train.max_steps": 2, "train.grad_accum": 1, "train.learning_rate": 5e-2,
        "train.save_steps": 100, "train.logging_steps": 1, "train.threads": 1,
        "train.warmup_ratio": 0.0, "train.report_to": ["none"], "train.progress": False,
        "validation.users": 0, **overrides})
    adapter = Path(finetune(recipe).result.adapter_dir)
    assert (adapter / "adapter_config.json").is_file()
    return adapter


def test_finetuned_adapter_serves_in_the_recommender(tmp_path, catalog_parts, tiny_model_dir):
    adapter = _tiny_finetune(tiny_model_dir, tmp_path / "run")
    ds, retriever = catalog_parts
    reranker = {"backend": "transformers", "model": str(tiny_model_dir), "permutations": 1}
    rec = Recommender.from_config({**BASE, "reranker": {**reranker, "adapter": str(adapter)}},
                                  dataset=ds, retriever=retriever)
    req = RecRequest(user_id="u001", k=5, n_candidates=8, request_id="same")
    resp = rec.recommend(req)
    assert len(resp.items) == 5
    calls = [c for c in resp.trace.llm_calls if c.stage == "rerank"]
    assert len(calls) == 1 and calls[0].model == str(tiny_model_dir)
    assert calls[0].adapter is not None and calls[0].adapter == rec.reranker.llm.adapter  # type: ignore[union-attr]
    assert calls[0].adapter in rec.describe_reranker()

    base = Recommender.from_config({**BASE, "reranker": reranker}, dataset=ds, retriever=retriever)
    base_resp = base.recommend(req)
    assert [c.adapter for c in base_resp.trace.llm_calls] == [None]
    assert [it.score for it in resp.items] != [it.score for it in base_resp.items]  # the adapter scores


def test_a_second_runs_adapter_is_not_mistaken_for_the_first(tmp_path, tiny_model_dir):
    """Every finetune run writes its adapter to <out>/adapter: loading run B's after run A's
    into the same model must score with B's weights and trace B under its own name."""
    from llmrank.llm.transformers_backend import TransformersLLM

    first = _tiny_finetune(tiny_model_dir, tmp_path / "a")
    second = _tiny_finetune(tiny_model_dir, tmp_path / "b", **{"train.learning_rate": 2e-1, "seed": 1})
    prompts, labels = ["Candidates: A. B. C. Answer:"], ["A", "B", "C"]
    only_second = TransformersLLM(str(tiny_model_dir), str(second)).label_logprobs(prompts, labels)
    llm = TransformersLLM(str(tiny_model_dir), str(first))
    name_a = llm.adapter
    name_b = llm.load_adapter(str(second))
    assert name_b != name_a and llm.adapter == name_b
    assert llm.label_logprobs(prompts, labels) == pytest.approx(only_second, abs=1e-5)
    assert llm.load_adapter(str(first)) == name_a  # loaded once, switched back to by path


def test_configured_adapter_is_loaded_on_a_shared_model(tmp_path, catalog_parts, tiny_model_dir):
    """``from_config(..., llm=shared)`` (servers sharing one model) with ``reranker.adapter``:
    the prompts follow the adapter's manifest, so the adapter must score them too."""
    from llmrank.llm.transformers_backend import TransformersLLM

    adapter = _tiny_finetune(tiny_model_dir, tmp_path / "run")
    ds, retriever = catalog_parts
    reranker = {"backend": "transformers", "model": str(tiny_model_dir), "adapter": str(adapter)}
    shared = TransformersLLM(str(tiny_model_dir))
    rec = Recommender.from_config({**BASE, "reranker": reranker}, dataset=ds, retriever=retriever, llm=shared)
    own = Recommender.from_config({**BASE, "reranker": reranker}, dataset=ds, retriever=retriever)
    req = RecRequest(user_id="u001", k=5, n_candidates=8, request_id="same")
    resp, expected = rec.recommend(req), own.recommend(req)
    assert [c.adapter for c in resp.trace.llm_calls] == [c.adapter for c in expected.trace.llm_calls] != [None]
    assert [it.score for it in resp.items] == pytest.approx([it.score for it in expected.items], abs=1e-5)
