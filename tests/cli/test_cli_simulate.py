from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from llmrank.cli.simulate import register


def test_simulate_command_on_ml100k(ml100k_dir, tmp_path):
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep `simulate` a subcommand
        pass

    cfg = tmp_path / "sim.toml"
    cfg.write_text('[data]\ndataset = "ml-100k"\n[replay]\nk = 5\nn_candidates = 30\n'
                   '[[policies]]\nlabel = "greedy"\nname = "greedy"\n'
                   '[[policies]]\nlabel = "ts"\nname = "thompson"\n')
    out = tmp_path / "report"
    res = CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--data-dir", str(ml100k_dir.parent),
                                   "--steps", "40", "--out", str(out), "--policies", "greedy,ts,egreedy",
                                   "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["steps"] == 40 and set(body["policies"]) == {"greedy", "ts", "egreedy"}
    for name in ("metrics.json", "report.md", "cumulative_hit_rate.png", "coverage.png", "regret_vs_best.png"):
        assert (out / name).stat().st_size > 0


def test_a_negative_seed_is_a_usage_error_not_a_numpy_traceback(tmp_path):
    """--seed -1 reached numpy's SeedSequence: ValueError 'expected non-negative integer'."""
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    res = CliRunner().invoke(app, ["simulate", "--dataset", "catalog", "--steps", "5", "--seed", "-1",
                                   "--out", str(tmp_path / "r"), "--no-plots", "--json"])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "--seed" in res.output


def test_policies_that_name_no_policy_are_a_usage_error(tmp_path):
    """--policies ',' (or ' , ') named no policy and silently replayed the config's whole
    list with exit 0; --rankers ',' of `llmrank eval` is already a ConfigError."""
    from llmrank.cli.common import exit_code_for
    from llmrank.errors import ConfigError

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    for value in (",", " , "):
        res = CliRunner().invoke(app, ["simulate", "--dataset", "catalog", "--steps", "5", "--policies", value,
                                       "--out", str(tmp_path / "r"), "--no-plots", "--json"])
        assert isinstance(res.exception, ConfigError), repr(res.exception)
        assert exit_code_for(res.exception) == 2 and res.stdout == ""
        assert not (tmp_path / "r").exists()
