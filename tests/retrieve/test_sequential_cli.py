"""``llmrank train-retriever`` end to end on a generated MovieLens-format folder."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli.train_retriever import register
from llmrank.retrieve import load_retriever
from llmrank.retrieve.sequential.ensemble import EnsembleModel
from llmrank.retrieve.sequential.synthetic import cyclic_dataset


@pytest.fixture()
def movielens_dir(tmp_path):
    """The cyclic dataset written as ml-latest-small CSVs (movieId = item code + 1)."""
    ds = cyclic_dataset(n_users=120)
    folder = tmp_path / "cyclic-ml"
    folder.mkdir()
    code = {iid: n + 1 for n, iid in enumerate(ds.item_ids)}
    with (folder / "movies.csv").open("w") as fh:
        fh.write("movieId,title,genres\n")
        for iid in ds.item_ids:
            it = ds.items[iid]
            fh.write(f"{code[iid]},{it.title} ({it.year}),{'|'.join(it.genres)}\n")
    inter = ds.interactions
    with (folder / "ratings.csv").open("w") as fh:
        fh.write("userId,movieId,rating,timestamp\n")
        for u, i, t in zip(inter.user, inter.item, inter.timestamp, strict=True):
            fh.write(f"{u + 1},{i + 1},5.0,{t}\n")
    return folder


@pytest.fixture()
def app():
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # keep a multi-command app so the name is required
    return app


@pytest.mark.parametrize("kind", ["sequential", "fused"])
def test_train_retriever_writes_an_index_folder(app, movielens_dir, tmp_path, monkeypatch, kind):
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path / "home"))
    out = tmp_path / "idx"
    args = ["train-retriever", "--dataset", str(movielens_dir), "--retriever", kind,
            "--model", "sasrec", "--epochs", "3", "--hidden", "16", "--max-len", "12",
            "--batch-size", "32", "--lr", "0.01", "--dropout", "0", "--device", "cpu",
            "--embedder", "hashing", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    members = 4 if kind == "fused" else 1  # fused default: two seeds each of SASRec and LRURec
    assert summary["retriever"] == kind and len(summary["epochs"]) == 3 * members
    labels = list(dict.fromkeys(e.get("member", "") for e in summary["epochs"]))
    assert labels == (["1/4 sasrec seed 0", "2/4 lru seed 0", "3/4 lru seed 1", "4/4 sasrec seed 1"]
                      if kind == "fused" else [""])
    assert summary["epochs"][0]["ndcg@10"] > 0 and summary["best_epoch"] in (1, 2, 3)
    loaded = load_retriever(out)
    assert loaded.kind == kind and len(loaded.retrieve(history=["1", "2"], k=5)) == 5
    assert isinstance(loaded.model, EnsembleModel) == (kind == "fused")


def test_ensemble_none_trains_one_model(app, movielens_dir, tmp_path):
    out = tmp_path / "idx"
    args = ["train-retriever", "--dataset", str(movielens_dir), "--retriever", "fused",
            "--ensemble", "none", "--epochs", "1", "--hidden", "8", "--max-len", "8",
            "--device", "cpu", "--embedder", "hashing", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["epochs"]) == 1
    assert not isinstance(load_retriever(out).model, EnsembleModel)


def test_rejects_unknown_model(app, movielens_dir):
    result = CliRunner().invoke(app, ["train-retriever", "--dataset", str(movielens_dir),
                                      "--model", "gpt"])
    assert result.exit_code != 0


def test_text_output_shows_epochs_and_the_index_folder(app, movielens_dir, tmp_path):
    out = tmp_path / "idx"
    args = ["train-retriever", "--dataset", str(movielens_dir), "--retriever", "fused",
            "--ensemble", "none", "--epochs", "1", "--hidden", "8", "--max-len", "8",
            "--device", "cpu", "--embedder", "hashing", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "validation" in text and "NDCG@10" in text and "best epoch" in text
    assert "fusion" in text and "kappa" in text and "lru (hidden 8," in text


def test_rejects_unknown_retriever_kind(app, movielens_dir):
    result = CliRunner().invoke(app, ["train-retriever", "--dataset", str(movielens_dir),
                                      "--retriever", "dense"])
    assert result.exit_code == 2 and "--retriever must be one of fused, sequential" in result.output


def test_seed_flag_wins_over_the_config_files_sequential_seed(app, movielens_dir, tmp_path):
    """Flags override the config: --seed must reach the model even when the config file
    names a sequential seed of its own."""
    config = tmp_path / "cfg.toml"
    config.write_text("[retriever.options.sequential]\nseed = 3\n")
    args = ["train-retriever", "--dataset", str(movielens_dir), "--retriever", "sequential",
            "--epochs", "0", "--hidden", "8", "--max-len", "8", "--device", "cpu",
            "--seed", "5", "--config", str(config), "--out", str(tmp_path / "idx"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"]["seed"] == 5


def test_the_configs_retriever_kind_is_used_without_the_flag(app, movielens_dir, tmp_path):
    """--retriever defaulted to 'fused' and was always passed as retriever.kind, so a config
    saying kind = "sequential" trained a fused index unless the flag was repeated."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[retriever]\nkind = "sequential"\n')
    args = ["train-retriever", "--dataset", str(movielens_dir), "--config", str(cfg),
            "--epochs", "1", "--hidden", "8", "--max-len", "8", "--device", "cpu",
            "--embedder", "hashing", "--out", str(tmp_path / "idx"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["retriever"] == "sequential"
    assert load_retriever(tmp_path / "idx").kind == "sequential"
