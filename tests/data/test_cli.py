"""``llmrank data info|download|convert`` through the Typer app (no network)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from llmrank.cli.common import run_guarded
from llmrank.cli.data import app

runner = CliRunner()


def test_info_json_on_real_data(ml_small_dir):
    result = runner.invoke(app, ["info", str(ml_small_dir), "--kcore", "5", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["summary"]["users"], out["summary"]["items"], out["summary"]["interactions"]) == (610, 3650, 90274)
    assert out["report"]["format"] == "movielens" and out["report"]["steps"][0].startswith("5-core")


def test_kcore_zero_turns_off_the_configs_kcore(tmp_path):
    src = tmp_path / "ev.csv"
    src.write_text("user_id,item_id,timestamp\na,x,1\na,y,2\nb,x,3\nb,y,4\nc,x,5\n")
    config = tmp_path / "c.toml"
    config.write_text("[data]\nkcore = 2\n")
    args = ["info", str(src), "--config", str(config), "--json"]
    assert json.loads(runner.invoke(app, args).stdout)["summary"]["interactions"] == 4  # 2-core drops c
    result = runner.invoke(app, [*args, "--kcore", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["interactions"] == 5


def test_info_counts_lines_with_lone_surrogates_and_convert_saves_them(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_text('{"user_id": "u", "item_id": "i", "timestamp": 1, "title": "Caf\\u00e9 \\ud83d"}\n')
    table = runner.invoke(app, ["info", str(src)])
    assert table.exit_code == 0, table.output
    assert "lines repaired" in table.stdout
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output  # was a raw UnicodeEncodeError from pyarrow
    assert json.loads(result.stdout)["report"]["repaired"] == 1


def test_info_table_and_convert_round_trip(tmp_path, ml100k_dir):
    dst = tmp_path / "ml100k-canonical"
    result = runner.invoke(app, ["convert", str(ml100k_dir), str(dst), "--min-rating", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["interactions"] == 55_375
    table = runner.invoke(app, ["info", str(dst)])
    assert table.exit_code == 0 and "55,375" in table.stdout and "min_rating 4" in table.stdout
    again = runner.invoke(app, ["convert", str(ml100k_dir), str(dst)])
    assert again.exit_code != 0  # refuses to overwrite without --overwrite


def test_convert_generic_csv_with_mapping(tmp_path):
    src = tmp_path / "ev.csv"
    src.write_text("who,what,when\na,x,1\na,y,2\n")
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "out"), "--mapping",
                                 "user=who,item=what,timestamp=when", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["users"] == 1


def test_download_offline_exits_with_data_error_and_advice(tmp_path, monkeypatch, capsys):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(sys, "argv", ["llmrank-data", "download", "ml-latest-small", "--data-dir", str(tmp_path), "--json"])
    with pytest.raises(SystemExit) as exc:
        run_guarded(app)
    assert exc.value.code == 3  # DataError family
    err = capsys.readouterr().err
    assert "could not download ml-latest-small" in err and "--data-dir" in " ".join(err.split())
