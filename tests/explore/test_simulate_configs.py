"""Every simulation config shipped in eval/simulate/ loads, names known policies with valid
options, and a prior the simulator can build (without fitting it: no data, no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrank.explore import make_policy
from llmrank.explore.simulate import load_simulate_config, make_prior

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "eval" / "simulate").glob("*.toml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_simulation_config_is_runnable(path):
    cfg = load_simulate_config(path)
    cfg.replay_config()  # unknown replay keys raise
    assert make_prior(cfg.prior) is not None
    for spec in cfg.select(None):
        make_policy(spec.name, spec.options)


def test_an_unreadable_simulation_config_is_a_config_error(tmp_path):
    """Malformed YAML or non-UTF-8 text is a ConfigError naming the file, never a traceback."""
    from llmrank.errors import ConfigError

    bad_yaml = tmp_path / "sim.yaml"
    bad_yaml.write_text("policies: [\n  bad")
    latin = tmp_path / "sim.toml"
    latin.write_bytes("seed = 1 # caf\xe9".encode("latin-1"))
    for path in (bad_yaml, latin):
        with pytest.raises(ConfigError, match="sim"):
            load_simulate_config(path)


def test_the_seed_flag_overrides_a_seed_in_the_replay_table(tmp_path, monkeypatch):
    """``llmrank simulate --seed`` is the run's seed even when the config's [replay] table
    names one (it seeds the request sample, the item vectors and every policy)."""
    import typer
    from typer.testing import CliRunner

    import llmrank.explore.simulate as sim
    from llmrank.cli.simulate import register

    seen = []

    def fake_simulate(config, **_):
        seen.append(config.replay_config().seed)
        raise RuntimeError("stop after reading the config")

    monkeypatch.setattr(sim, "simulate", fake_simulate)
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep `simulate` a subcommand
        pass

    cfg = tmp_path / "sim.toml"
    cfg.write_text("seed = 0\n[replay]\nseed = 5\nk = 5\n")
    CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--seed", "7", "--json"])
    assert seen == [7]


def test_a_negative_seed_is_a_config_error(tmp_path):
    """``seed = -1`` (top level or in [replay]) crashed in numpy once the replay started."""
    from llmrank.errors import ConfigError

    top = tmp_path / "top.toml"
    top.write_text("seed = -1\n")
    with pytest.raises(ConfigError, match="seed"):
        load_simulate_config(top)
    inner = tmp_path / "inner.toml"
    inner.write_text("[replay]\nseed = -1\n")
    with pytest.raises(ConfigError, match="seed"):
        load_simulate_config(inner).replay_config()
