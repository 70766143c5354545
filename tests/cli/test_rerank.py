"""`llmrank rerank`: one request over given candidates (labels and label scores, never an
item outside the candidates) and JSON-lines batches through the batch engine (bad lines
reported, resumable). Embedded catalog, fake LLM, hashing embedder: seconds."""

from __future__ import annotations

import json
import math
import sys

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli import rerank
from llmrank.cli.common import run_guarded

FAST = ["--backend", "fake", "--set", "embedder.backend=hashing"]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    rerank.register(app)
    app.command("noop", hidden=True)(lambda: None)
    return app


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path_factory.getbasetemp() / "home"))


def run(app, *args):
    return CliRunner().invoke(app, ["rerank", *args])


def run_json(app, *args):
    result = run(app, *args, "--json", *FAST)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_single_request_labels_and_renormalised_scores(app):
    data = run_json(app, "--user", "u001", "--items", "c010,c020,c030,c040")
    ids = [it["item_id"] for it in data["items"]]
    assert sorted(ids) == ["c010", "c020", "c030", "c040"]
    assert data["labels"] == {"c010": "A", "c020": "B", "c030": "C", "c040": "D"}
    assert sum(math.exp(it["rerank_score"]) for it in data["items"]) == pytest.approx(1.0)
    scores = [it["score"] for it in data["items"]]
    assert scores == sorted(scores, reverse=True)
    call = data["trace"]["llm_calls"][0]
    assert call["stage"] == "rerank" and call["n_prompts"] == 1 and "retrieve" not in data["trace"]["stage_seconds"]


def test_duplicates_repeated_flags_k_and_history(app):
    data = run_json(app, "--history", "c001,c002", "--items", "c050,c051", "--items", "c050",
                    "--items", "c052", "-k", "2")
    assert data["candidates"] == ["c050", "c051", "c052"] and len(data["items"]) == 2
    assert {it["item_id"] for it in data["items"]} <= {"c050", "c051", "c052"}
    assert data["user_id"] is None


def test_more_candidates_than_labels(app):
    items = ",".join(f"c{n:03d}" for n in range(1, 31))
    data = run_json(app, "--user", "u002", "--items", items, "--permutations", "2")
    assert sorted(it["item_id"] for it in data["items"]) == sorted(items.split(","))
    assert data["labels"] == {}  # windows relabel candidates: no single label per item
    assert data["trace"]["llm_calls"][0]["n_prompts"] > 2


def test_table_shows_labels(app):
    result = run(app, "--user", "u001", "--items", "c010,c020", *FAST)
    assert result.exit_code == 0, result.output
    assert "label" in result.stdout and "2 candidates reranked for user u001" in result.stdout


def test_usage_errors(app, tmp_path):
    assert run(app, "--user", "u001", *FAST).exit_code != 0  # no items
    assert run(app, "--items", "c001,c002", *FAST).exit_code != 0  # no user/history/text
    path = tmp_path / "in.jsonl"
    path.write_text('{"user_id": "u001"}\n')
    result = run(app, str(path), "--user", "u001", *FAST)
    assert result.exit_code != 0 and "batch mode" in result.output


def test_unknown_item_and_user_are_clear_errors(app, monkeypatch, capsys):
    def guarded(*args):
        monkeypatch.setattr(sys, "argv", ["llmrank", "rerank", *args, *FAST])
        with pytest.raises(SystemExit) as info:
            run_guarded(app)
        return info.value.code, capsys.readouterr().err

    code, err = guarded("--user", "u001", "--items", "c001,ghost")
    assert code == 5 and "ghost" in err
    code, err = guarded("--user", "nobody", "--items", "c001,c002")
    assert code == 5 and "unknown user" in err


def test_batch_file_with_bad_lines_and_resume(app, tmp_path):
    src = tmp_path / "requests.jsonl"
    lines = [
        {"user_id": "u001", "candidates": ["c001", "c002", "c003"]},
        {"user_id": "u002", "k": 3},  # retrieved candidates
        "not json at all",
        {"user_id": "nobody", "candidates": ["c001", "c002"]},
        {"history": ["c005"], "candidates": ["c007", "c008"], "k": 1},
    ]
    src.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out.jsonl"
    report = run_json(app, str(src), str(out))
    assert (report["total"], report["done"], report["n_failed"]) == (5, 3, 2)
    assert {f["line"] for f in report["failed"]} == {3, 4}
    rows = {r["line"]: r for r in map(json.loads, out.read_text().splitlines()) if r.get("ok", True)}
    assert {it["item_id"] for it in rows[1]["items"]} == {"c001", "c002", "c003"}
    assert len(rows[2]["items"]) == 3 and len(rows[5]["items"]) == 1
    again = run_json(app, str(src), str(out))
    assert again["resumed"] == 5 and again["processed"] == 0
    # the table form and the default output name
    result = run(app, str(src), *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "requests.reranked.jsonl").is_file() and "line 3" in result.output


def test_help_names_the_errors_file_the_batch_writes(app, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("not json\n")
    result = run(app, str(src), str(out), "--json", *FAST)
    assert result.exit_code == 3 and json.loads(result.stdout)["n_failed"] == 1
    assert (tmp_path / "out.jsonl.errors.jsonl").is_file()
    assert "OUT.jsonl.errors.jsonl" in run(app, "--help").output


def test_a_batch_where_every_line_failed_exits_3_with_its_report(app, tmp_path):
    """A script must not read "done: 0" as success; one good line is a success."""
    src = tmp_path / "allbad.jsonl"
    src.write_text('not json\n{"user_id": "nobody", "candidates": ["c001", "c002"]}\n')
    result = run(app, str(src), str(tmp_path / "out.jsonl"), *FAST)
    assert result.exit_code == 3
    assert "line 1" in result.output and "2 requests failed and none succeeded" in result.output
    src.write_text('not json\n{"user_id": "u001", "candidates": ["c001", "c002"]}\n')
    assert run(app, str(src), str(tmp_path / "out2.jsonl"), *FAST).exit_code == 0


def test_failure_reasons_keep_their_brackets(app, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"user_id": "[vip]", "candidates": ["c001", "c002"]}\n'
                   '{"user_id": "u001", "candidates": ["c001", "c002"]}\n')
    result = run(app, str(src), str(tmp_path / "out.jsonl"), *FAST)
    assert result.exit_code == 0 and "unknown user '[vip]'" in result.output


def test_a_batch_resumed_with_another_config_exits_2_and_names_the_flag(app, tmp_path, monkeypatch,
                                                                        capsys):
    """The refusal said "pass overwrite=True" (Python) and exited 3 (data) for a config change."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"user_id": "u001", "candidates": ["c001", "c002"]}\n')
    assert run(app, str(src), str(out), *FAST).exit_code == 0
    monkeypatch.setattr(sys, "argv", ["llmrank", "rerank", str(src), str(out), *FAST,
                                      "--set", "reranker.permutations=2"])
    with pytest.raises(SystemExit) as info:
        run_guarded(app)
    err = " ".join(capsys.readouterr().err.split())
    assert info.value.code == 2 and "different config; start again with --overwrite" in err


def test_workers_sets_the_ray_engines_actor_count(app, tmp_path, monkeypatch):
    """--workers went to the local engine only: `--engine ray` always ran one actor, and the
    CLI had no other way to scale it."""
    import llmrank.batch
    from llmrank.batch import BatchReport

    seen: dict[str, object] = {}

    def fake_run_batch(requests, out, engine="local", **options):
        seen.clear()
        seen.update(engine=engine, **options)
        return BatchReport(engine, str(out), str(out) + ".errors.jsonl", total=1, done=1)

    monkeypatch.setattr(llmrank.batch, "run_batch", fake_run_batch)
    src = tmp_path / "in.jsonl"
    src.write_text('{"user_id": "u001", "candidates": ["c001", "c002"]}\n')
    result = run(app, str(src), str(tmp_path / "out.jsonl"), "--engine", "ray", "--workers", "3", "--json", *FAST)
    assert result.exit_code == 0, result.output
    assert seen["engine"] == "ray" and seen["concurrency"] == 3 and "workers" not in seen
    run(app, str(src), str(tmp_path / "out2.jsonl"), "--workers", "2", "--json", *FAST)
    assert seen["engine"] == "local" and seen["workers"] == 2 and "concurrency" not in seen


def test_retry_failed_reruns_the_lines_in_the_errors_file(app, tmp_path):
    """A line that failed for a passing reason (a server that was down) stayed failed on every
    resume; only --overwrite, which redoes everything, got it out."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"user_id": "u001", "candidates": ["c001", "c002"]}\n'
                   '{"user_id": "u002", "candidates": ["c003", "c004"]}\n')
    assert run(app, str(src), str(out), *FAST).exit_code == 0
    first, second = out.read_text().splitlines(keepends=True)
    out.write_text(first)  # as if line 2 had timed out
    errors = tmp_path / "out.jsonl.errors.jsonl"
    errors.write_text('{"line": 2, "error": "TimeoutError", "reason": "backend timed out"}\n')
    again = run_json(app, str(src), str(out))
    assert again["processed"] == 0 and [f["line"] for f in again["failed"]] == [2]
    retried = run_json(app, str(src), str(out), "--retry-failed")
    assert (retried["processed"], retried["done"], retried["n_failed"]) == (1, 2, 0)
    assert json.loads(out.read_text().splitlines()[1])["items"] == json.loads(second)["items"]
    assert errors.read_text() == ""
    assert "--retry-failed" in run(app, "--help").output
