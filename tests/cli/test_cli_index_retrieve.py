"""`llmrank index build|query|info`, `llmrank retrieve` and `llmrank doctor` end to end, with
the hashing embedder (fast) on the real ml-latest-small files."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli import doctor, index, retrieve


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(index.app, name="index")
    retrieve.register(app)
    doctor.register(app)
    return app


@pytest.fixture(scope="module")
def built(app, ml_small_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("LLMRANK_HOME", str(home))
    out = home / "idx"
    result = CliRunner().invoke(app, ["index", "build", "--dataset", str(ml_small_dir),
                                      "--out", str(out), "--embedder", "hashing", "--json"])
    assert result.exit_code == 0, result.output
    yield out, json.loads(result.stdout)
    mp.undo()


def test_build_writes_index_folder(built):
    out, summary = built
    assert (out / "retriever.json").is_file() and (out / "index" / "index.faiss").is_file()
    m = summary["manifest"]
    assert m["kind"] == "text" and m["n_items"] == 9742 and m["index"]["kind"] == "flat"
    assert m["embedder"]["backend"] == "hashing"


def test_query_by_text_and_item(app, built):
    out, _ = built
    r = CliRunner().invoke(app, ["index", "query", "--index", str(out), "--text", "toy story",
                                 "-k", "4", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]
    assert len(res) == 4 and any(x["title"].startswith("Toy Story") for x in res)
    r = CliRunner().invoke(app, ["index", "query", "--index", str(out), "--item", "1", "--json",
                                 "--genre", "Animation"])
    ids = [x["item_id"] for x in json.loads(r.stdout)["results"]]
    assert len(ids) == 10 and "1" not in ids
    r = CliRunner().invoke(app, ["index", "query", "--index", str(out)])
    assert r.exit_code != 0  # neither --text nor --item


def test_retrieve_user_from_index_folder(app, built, ml_small):
    out, _ = built
    r = CliRunner().invoke(app, ["retrieve", "--index", str(out), "--user", "1", "-k", "20",
                                 "--deny", "2", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    ids = [c["item_id"] for c in data["candidates"]]
    assert len(ids) == 20 and not set(ids) & set(ml_small.history("1")) and "2" not in ids
    assert data["history_length"] == len(ml_small.history("1"))


def test_retrieve_refuses_an_index_of_another_dataset(app, built, ml100k_dir):
    """ml-100k and ml-latest-small share numeric ids for different films: an index of one
    serving the other's users would return wrong films without a word."""
    out, _ = built
    r = CliRunner().invoke(app, ["retrieve", "--index", str(out), "--dataset", str(ml100k_dir),
                                 "--user", "1", "--json"])
    assert r.exit_code != 0
    assert "built on dataset 'ml-latest-small'" in str(r.exception or r.output)


def test_retrieve_text_and_errors(app, built):
    out, _ = built
    r = CliRunner().invoke(app, ["retrieve", "--index", str(out), "--text", "space", "-k", "3"])
    assert r.exit_code == 0 and "space" in r.stdout.lower()
    assert CliRunner().invoke(app, ["retrieve", "--index", str(out)]).exit_code != 0
    r = CliRunner().invoke(app, ["index", "build", "--kind", "annoy"])
    assert r.exit_code != 0


def test_info(app, built):
    out, _ = built
    r = CliRunner().invoke(app, ["index", "info", "--index", str(out), "--json"])
    assert json.loads(r.stdout)["dataset"]["name"] == "ml-latest-small"


def test_doctor_json(app):
    r = CliRunner().invoke(app, ["doctor", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["versions"]["python"] and "faiss" in rep["backends"]["vector index"]
    assert "text" in rep["backends"]["retriever"]
    assert rep["gpu"]["faiss_gpus"] is not None
    assert {"gpu", "dev"} <= set(rep["extras"])


def test_an_index_built_from_a_relative_path_works_from_another_directory(app, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path / "home"))
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "ev.csv").write_text("user_id,item_id,timestamp,title\n"
                                              "a,x,1,Space Saga\na,y,2,Robot Tale\nb,x,3,Space Saga\n")
    monkeypatch.chdir(tmp_path / "proj")
    out = tmp_path / "idx"
    r = CliRunner().invoke(app, ["index", "build", "--dataset", "ev.csv", "--out", str(out),
                                 "--embedder", "hashing", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["manifest"]["dataset"]["source"] == str(tmp_path / "proj" / "ev.csv")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["retrieve", "--index", str(out), "--user", "b", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["history_length"] == 1


def test_absolute_data_paths_leaves_names_alone(tmp_path, monkeypatch):
    from llmrank.config import DataConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    data = DataConfig(dataset="d", data_dir="store", options={"items_path": "it.csv", "seed": 1})
    pinned = index.absolute_data_paths(data)
    assert pinned.dataset == str(tmp_path / "d") and pinned.data_dir == str(tmp_path / "store")
    assert pinned.options == {"items_path": str(tmp_path / "it.csv"), "seed": 1}
    named = index.absolute_data_paths(DataConfig(dataset="ml-100k"))
    assert (named.dataset, named.data_dir) == ("ml-100k", None)  # looked up in data_dir at load


def test_titles_ids_and_paths_that_look_like_markup_are_shown_as_written(app, tmp_path, monkeypatch):
    """"[/path] odd" crashed rich (MarkupError) and "[bold]Loud[/bold]" lost its brackets."""
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path / "home"))
    (tmp_path / "ev.csv").write_text("user_id,item_id,timestamp,title\n"
                                     "a,[x],1,[/path] odd\na,y,2,[bold]Loud[/bold]\nb,[x],3,[/path] odd\n")
    out = tmp_path / "idx [bold]"
    r = CliRunner().invoke(app, ["index", "build", "--dataset", str(tmp_path / "ev.csv"),
                                 "--out", str(out), "--embedder", "hashing"])
    assert r.exit_code == 0, r.output
    assert "[bold]" in r.stdout  # the folder's name, in the table's title
    for args in (["index", "query", "--index", str(out), "--text", "[/path] odd"],
                 ["index", "query", "--index", str(out), "--item", "y"],
                 ["retrieve", "--index", str(out), "--text", "loud [bold]"]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, (args, r.output)
        assert "[/path] odd" in r.stdout and "[x]" in r.stdout, (args, r.stdout)
    r = CliRunner().invoke(app, ["index", "query", "--index", str(out), "--item", "[x]"])
    assert "[bold]Loud[/bold]" in r.stdout, r.stdout
    r = CliRunner().invoke(app, ["index", "info", "--index", str(out)])
    assert r.exit_code == 0 and "idx [bold]" in r.stdout, r.output


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_text_query_is_a_usage_error(app, built, blank):
    """`index query --text ""` went on to the retriever and exited 1 ("no items and no text"),
    as a failure; `retrieve --text "  "` the same. A blank --text is a usage error (exit 2)."""
    out, _ = built
    for args in (["index", "query", "--index", str(out), "--text", blank],
                 ["retrieve", "--index", str(out), "--text", blank]):
        r = CliRunner().invoke(app, [*args, "--json"])
        assert r.exit_code == 2, (args, r.output, r.exception)
        assert "--text" in r.output and r.stdout.count("{") == 0
