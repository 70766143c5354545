"""``llmrank eval`` end to end on a small synthetic MovieLens folder: every output exists,
the JSON carries provenance, flags override the config, a second run resumes."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli.common import exit_code_for
from llmrank.cli.eval import register
from llmrank.errors import ConfigError
from llmrank.eval.synthetic import write_movielens_csv


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep "eval" a subcommand, as in the real CLI
        pass

    return app


def test_eval_command_writes_reports(synth, tmp_path):
    data = write_movielens_csv(synth, tmp_path / "synth")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'name = "cli"\nseed = 0\n[data]\nkcore = 2\n[protocol]\nname = "full"\n'
        '[[rankers]]\nname = "random"\n[[rankers]]\nname = "most-popular"\n'
        '[[rankers]]\nname = "itemknn"\nlabel = "knn20"\noptions = { neighbors = 20 }\n'
        '[run]\nreference = "most-popular"\n')
    out = tmp_path / "out"
    args = ["eval", "--config", str(cfg), "--dataset", str(data), "--protocol", "candidates",
            "--rankers", "knn20,most-popular", "--out", str(out), "--workers", "2", "--json"]
    res = CliRunner().invoke(_app(), args)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert set(payload["results"]) == {"knn20", "most-popular"}
    assert "kcore=2" in payload["header"]["data"]
    for name in ("metrics.json", "results.md", "metric_vs_k.png", "tradeoff.png",
                 "position_bias.png", "runs/knn20.jsonl", "runs/knn20.trec", "runs/qrels.trec"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["config"]["protocol"]["name"] == "candidates"
    assert meta["preprocessing"]["kcore"] == 2 and meta["versions"]["numpy"]
    assert "commit" in meta["git"] and meta["started"] <= meta["finished"]
    knn = meta["results"]["knn20"]
    assert knn["paired_vs_reference"]["ndcg@10"]["method"] == "permutation"
    assert 0 <= knn["metrics"]["ndcg@10"]["low"] <= knn["metrics"]["ndcg@10"]["high"] <= 1
    md = (out / "results.md").read_text()
    assert "ndcg@10" in md and "kcore=2" in md and "candidates" in md
    first = (out / "runs" / "knn20.jsonl").read_text().splitlines()[0]
    assert len(json.loads(first)["items"]) == 20

    again = CliRunner().invoke(_app(), [*args[:-1], "--no-plots"])  # resumes from checkpoints
    assert again.exit_code == 0, again.output
    assert json.loads((out / "metrics.json").read_text())["results"]["knn20"]["metrics"] == \
        knn["metrics"]


def test_eval_command_reports_bad_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[protocol]\nname = 'nope'\n")
    res = CliRunner().invoke(_app(), ["eval", "--config", str(bad)])
    assert res.exit_code != 0


def test_rankers_without_the_reference_drop_the_paired_comparison(synth, tmp_path):
    """--rankers random with a config whose reference is most-popular evaluated everything,
    then failed "reference ranker 'most-popular' is not among the rankers"."""
    data = write_movielens_csv(synth, tmp_path / "synth")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nkcore = 2\n[protocol]\nname = "candidates"\n'
                   '[[rankers]]\nname = "random"\n[[rankers]]\nname = "most-popular"\n'
                   '[run]\nreference = "most-popular"\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(_app(), ["eval", "--config", str(cfg), "--dataset", str(data),
                                      "--rankers", "random", "--out", str(out), "--max-users", "30",
                                      "--no-plots"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "no paired comparison" in res.stderr and "most-popular" in res.stderr
    assert "users: 30 evaluated, the first of" in res.stdout  # --max-users, said in the header
    assert "plots" not in res.stdout.split("outputs:")[1]  # --no-plots
    assert json.loads((out / "metrics.json").read_text())["results"].keys() == {"random"}
    res = CliRunner().invoke(_app(), ["eval", "--config", str(cfg), "--dataset", str(data),
                                      "--rankers", "random", "--reference", "bpr", "--out", str(out)])
    assert res.exit_code != 0  # an explicit --reference that is not run stays an error


def test_bad_numbers_and_empty_rankers_are_usage_errors(tmp_path):
    """--max-users 0 and --seed -1 ran to a ValueError traceback ('no shards to concatenate',
    numpy's 'expected non-negative integer'); --rankers ',' evaluated nothing and exited 0
    (the table then failed on an IndexError)."""
    from llmrank.cli.common import exit_code_for

    base = ["eval", "--dataset", "catalog", "--out", str(tmp_path / "out"), "--no-plots",
            "--max-users", "10", "--json"]
    for extra in (["--max-users", "0"], ["--seed", "-1"], ["--kcore", "-1"], ["--workers", "0"],
                  ["--rankers", ","], ["--rankers", " , "]):
        res = CliRunner().invoke(_app(), [*base, *extra])
        code = res.exit_code if res.exception is None or isinstance(res.exception, SystemExit) \
            else exit_code_for(res.exception)
        assert code == 2, (extra, repr(res.exception))
        assert res.stdout == "", extra


@pytest.mark.parametrize("body", [
    'rankers = ["most-popular"]\n',             # names, not [[rankers]] tables
    "rankers = 5\n",
    'run = 3\n[[rankers]]\nname = "random"\n',  # run is not a section
    'rankers = [{ name = "random" }, "most-popular"]\n',
])
def test_rankers_flag_over_a_malformed_config_is_a_config_error(body, tmp_path):
    """--rankers read the config's rankers and run sections as lists of tables and a table
    before they were validated: AttributeError / TypeError tracebacks (exit 1)."""
    cfg = tmp_path / "e.toml"
    cfg.write_text(body)
    res = CliRunner().invoke(_app(), ["eval", "--config", str(cfg), "--rankers", "random", "--dataset",
                                      "catalog", "--max-users", "5", "--no-plots", "--out",
                                      str(tmp_path / "out"), "--json"])
    assert isinstance(res.exception, ConfigError), repr(res.exception)
    assert exit_code_for(res.exception) == 2 and res.stdout == ""
