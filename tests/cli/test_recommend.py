"""`llmrank recommend` end to end on the embedded catalog with the hashing embedder and the
fake LLM (seconds); the real default model runs in a slow variant."""

from __future__ import annotations

import json
import math
import sys

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli import recommend
from llmrank.cli.common import run_guarded

FAST = ["--backend", "fake", "--set", "embedder.backend=hashing"]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    recommend.register(app)
    app.command("noop", hidden=True)(lambda: None)  # keep a command group (no implicit default)
    return app


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path_factory.getbasetemp() / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def catalog():
    from llmrank.data import load_dataset

    return load_dataset()


def run(app, *args):
    result = CliRunner().invoke(app, ["recommend", *args])
    return result


def run_json(app, *args):
    result = run(app, *args, "--json", *FAST)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def guarded(app, monkeypatch, capsys, *args):
    """Through run_guarded, as the console entry point runs: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["llmrank", "recommend", *args])
    with pytest.raises(SystemExit) as info:
        run_guarded(app)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def test_user_json_has_ranked_items_and_trace(app, catalog):
    data = run_json(app, "--user", "u001", "-k", "5")
    items = data["items"]
    assert [it["position"] for it in items] == list(range(5))
    ids = [it["item_id"] for it in items]
    assert len(set(ids)) == 5 and all(i in catalog.items for i in ids)
    assert not set(ids) & set(catalog.history("u001"))  # seen items are excluded by default
    scores = [it["score"] for it in items]
    assert scores == sorted(scores, reverse=True)
    assert all(it["rerank_score"] is not None and it["retrieval_score"] is not None for it in items)
    call = data["trace"]["llm_calls"][0]
    assert (call["stage"], call["backend"], call["template"], call["template_version"]) == \
        ("rerank", "fake", "rank", "1.0.0")
    assert call["prompt_tokens"] > 0 and call["n_prompts"] == 1
    assert {"retrieve", "rerank"} <= set(data["trace"]["stage_seconds"])
    assert data["reranker"].startswith("fake:") and data["dataset"] == "catalog"


def test_reranker_probabilities_cover_all_candidates(app):
    data = run_json(app, "--user", "u002", "-k", "20", "--candidates", "20")
    assert len(data["items"]) == 20
    total = sum(math.exp(it["rerank_score"]) for it in data["items"])
    assert total == pytest.approx(1.0, abs=1e-6)  # renormalised over the 20 labels


def test_explain_and_table_output(app):
    data = run_json(app, "--user", "u003", "-k", "3", "--explain")
    assert all(it["explanation"] for it in data["items"])
    assert [c["stage"] for c in data["trace"]["llm_calls"]] == ["rerank", "explain"]
    result = run(app, "--user", "u003", "-k", "3", "--explain", *FAST)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("recommendations for user u003", "LLM calls", "rank@1.0.0", "explain",
                 "time per stage", "why"):
        assert text in out


def test_free_text_and_filters(app, catalog):
    data = run_json(app, "--text", "a family film about animals", "-k", "4", "--genre", "Family")
    assert data["user_id"] is None and data["text"] == "a family film about animals"
    assert len(data["items"]) == 4
    assert all("Family" in catalog.items[it["item_id"]].genres for it in data["items"])
    deny = data["items"][0]["item_id"]
    again = run_json(app, "--text", "a family film about animals", "-k", "4", "--genre", "Family",
                     "--deny", deny)
    assert deny not in [it["item_id"] for it in again["items"]]


def test_no_rerank_keeps_retrieval_order(app):
    data = run_json(app, "--user", "u001", "-k", "5", "--no-rerank")
    assert data["reranker"] == "off" and data["trace"]["llm_calls"] == []
    scores = [it["retrieval_score"] for it in data["items"]]
    assert scores == sorted(scores, reverse=True)


def test_permutations_flag_reaches_the_reranker(app):
    data = run_json(app, "--user", "u001", "-k", "3", "--permutations", "3")
    assert "3 perm." in data["reranker"] and data["trace"]["llm_calls"][0]["n_prompts"] == 3


def test_config_file_and_set_overrides(app, tmp_path):
    cfg = tmp_path / "deploy.toml"
    cfg.write_text('[reranker]\nbackend = "fake"\npermutations = 2\n[embedder]\nbackend = "hashing"\n')
    result = run(app, "--user", "u001", "-k", "2", "--config", str(cfg), "--json")
    assert result.exit_code == 0, result.output
    assert "2 perm." in json.loads(result.stdout)["reranker"]
    result = run(app, "--user", "u001", "--set", "oops", *FAST)
    assert result.exit_code != 0 and "KEY=VALUE" in result.output


def test_usage_and_typed_errors(app, monkeypatch, capsys):
    assert run(app, *FAST).exit_code != 0  # neither --user nor --text
    code, out, err = guarded(app, monkeypatch, capsys, "--user", "nobody", *FAST)
    assert code == 5 and "unknown user 'nobody' in dataset 'catalog'" in err and "Traceback" not in err + out
    code, _, err = guarded(app, monkeypatch, capsys, "--user", "u001", "--backend", "nope",
                           "--set", "embedder.backend=hashing")
    assert code == 2 and "nope" in err and "fake" in err  # a config error; the valid names are listed
    code, _, err = guarded(app, monkeypatch, capsys, "--user", "u001", "--config", "/missing.toml")
    assert code == 2 and "config file not found" in err


def test_unknown_user_with_text_still_recommends(app):
    data = run_json(app, "--user", "nobody", "--text", "space adventure", "-k", "3")
    assert len(data["items"]) == 3


@pytest.mark.slow
def test_real_default_model_recommends_and_explains(app, monkeypatch):
    """The offline SmolLM2 through the transformers backend (converted on first use)."""
    monkeypatch.delenv("LLMRANK_HOME")  # reuse the converted default model
    result = run(app, "--user", "u001", "-k", "3", "--explain", "--json",
                 "--set", "embedder.backend=hashing", "--set", "reranker.options.threads=1")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["items"]) == 3 and all(it["explanation"] for it in data["items"])
    call = data["trace"]["llm_calls"][0]
    assert call["backend"] == "transformers" and call["model"] == "default" and call["prompt_tokens"] > 100


def test_titles_and_ids_are_shown_literally_not_as_markup():
    """A film called "[REC]" (or "[bold]...") is data: the table shows it as written."""
    from llmrank.cli.common import console
    from llmrank.data.dataset import Dataset
    from llmrank.llm.fake import FakeLLM
    from llmrank.recommender import Recommender
    from llmrank.records import Candidate, Item, User

    items = [Item("1", "[REC]", 2007, ("Horror",)), Item("2", "[bold]Loud[/bold]", 2001, ("Drama",)),
             Item("3", "Heat", 1995, ("Crime",))]
    ds = Dataset.from_records("brackets", items, [User("u")], [("u", "3", 0, 4.0)])
    rec = Recommender.from_config({"reranker": {"backend": "fake"}}, dataset=ds, llm=FakeLLM(),
                                  retriever=object())  # type: ignore[arg-type]  # rerank() needs none
    resp = rec.rerank("u", [Candidate("1", 0.5), Candidate("2", 0.4)], k=2)
    with console.capture() as cap:
        recommend.show_response(rec, resp, "test")
    out = cap.get()
    assert "[REC] (2007)" in out and "[bold]Loud[/bold]" in out


def test_an_index_folder_that_is_not_there_is_an_error(app, monkeypatch, capsys, tmp_path):
    """--index with a mistyped folder was ignored: an index was built in memory and the
    answer came back (exit 0) as if from the trained index the user named."""
    missing = tmp_path / "no-such-index"
    code, out, err = guarded(app, monkeypatch, capsys, "--user", "u001", "--index", str(missing),
                             "--json", *FAST)
    assert code != 0 and out == "" and "no retriever index" in err and str(missing) in err
    assert "Traceback" not in err and not missing.exists()


@pytest.mark.parametrize("key", ["reranker.device", "embedder.device"])
def test_a_device_torch_does_not_know_is_a_config_error(app, key):
    """--set reranker.device=nosuch (or embedder.device) loaded the data and then ended in
    torch's RuntimeError traceback when the model was placed."""
    from llmrank.cli.common import exit_code_for
    from llmrank.errors import ConfigError

    res = CliRunner().invoke(app, ["recommend", "--user", "u001", *FAST, "--set", f"{key}=nosuch", "--json"])
    assert isinstance(res.exception, ConfigError), repr(res.exception)
    assert key in str(res.exception) and exit_code_for(res.exception) == 2 and res.stdout == ""
