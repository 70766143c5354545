from __future__ import annotations

import json

from typer.testing import CliRunner

from llmrank.cli.feedback import app
from llmrank.feedback import FeedbackEvent, Impression
from llmrank.feedback.sqlite_store import SqliteFeedbackStore

runner = CliRunner()


def _fill(path):
    s = SqliteFeedbackStore(path)
    for r in range(30):
        items = ("a", "b", "c") if r % 2 else ("b", "a", "c")
        s.log_impression(Impression(f"r{r}", f"u{r % 3}", items, (3.0, 2.0, 1.0), (0.5, 0.5, 1.0),
                                    "egreedy", timestamp=float(r), candidates=("a", "b", "c"),
                                    candidate_scores=(3.0, 2.0, 1.0)))
        s.log_event(FeedbackEvent(f"u{r % 3}", "a", "click", request_id=f"r{r}", timestamp=r + 0.5))
    s.close()


def test_export_import_stats_pairs(tmp_path):
    src, dst = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    _fill(src)
    out = tmp_path / "fb.jsonl"
    res = runner.invoke(app, ["export", "--store", str(src), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"impressions": 30, "events": 30, "file": str(out)}
    with out.open("a") as fh:
        fh.write("{broken\n")
    res = runner.invoke(app, ["import", str(out), "--store", str(dst), "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["written"] == 60 and body["skipped"] == 1 and ":61:" in body["problems"][0]
    res = runner.invoke(app, ["stats", "--store", str(dst), "--json"])
    assert json.loads(res.stdout)["click"] == 30
    pairs = tmp_path / "pairs.jsonl"
    res = runner.invoke(app, ["pairs", "--store", str(dst), "--out", str(pairs), "--json"])
    assert json.loads(res.stdout)["pairs"] == 60
    first = json.loads(pairs.read_text().splitlines()[0])
    assert first["chosen"] == "a" and first["rejected"] in ("b", "c")


def test_ope_command(tmp_path):
    src = tmp_path / "a.sqlite"
    _fill(src)
    res = runner.invoke(app, ["ope", "--store", str(src), "--policy", "greedy", "--n-boot", "50", "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["rounds"] == 30
    # greedy shows a first: it matches the logged slate half the time (w = 1 / 0.5), click on a
    assert abs(body["estimates"]["ips"]["value"] - 1.0) < 1e-9
