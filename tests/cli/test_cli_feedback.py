from __future__ import annotations

import json

import pytest
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


def test_ope_gives_the_target_the_deployment_features_and_logged_history(tmp_path, monkeypatch):
    """With --config the target policy gets the item features the server builds, and every
    round carries the history its impression logged (a linear bandit needs both)."""
    import llmrank.explore.ope as ope

    src = tmp_path / "a.sqlite"
    s = SqliteFeedbackStore(src)
    for r in range(6):
        s.log_impression(Impression(f"r{r}", "u001", ("c001", "c002"), (2.0, 1.0), (1.0, 1.0), "greedy",
                                    timestamp=float(r), candidates=("c001", "c002", "c003"),
                                    candidate_scores=(2.0, 1.0, 0.0),
                                    context={"segment": None, "history": ["c010", "c011"]}))
        s.log_event(FeedbackEvent("u001", "c001", "click", request_id=f"r{r}", timestamp=r + 0.5))
    s.close()
    cfg = tmp_path / "deploy.toml"
    cfg.write_text('[embedder]\nbackend = "hashing"\ncache = false\n[reranker]\nbackend = "fake"\n')
    seen = {}
    real = ope.policy_target

    def spy(policy):
        seen["features"] = policy.features
        target = real(policy)

        def wrapped(rnd, k):
            seen.setdefault("histories", []).append(list(rnd.context.history))
            return target(rnd, k)

        return wrapped

    monkeypatch.setattr(ope, "policy_target", spy)
    res = runner.invoke(app, ["ope", "--store", str(src), "--config", str(cfg), "--policy", "linucb",
                              "--n-boot", "20", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["features"] is True
    assert seen["features"] is not None and seen["features"].embeddings is not None
    assert seen["histories"] and all(h == ["c010", "c011"] for h in seen["histories"])


def test_ope_on_a_one_impression_store_with_a_pinned_target(tmp_path):
    src = tmp_path / "a.sqlite"
    s = SqliteFeedbackStore(src)
    s.log_impression(Impression("r0", "u0", ("a", "b"), (2.0, 1.0), (0.5, 0.5), "softmax", timestamp=1.0,
                                candidates=("a", "b", "c"), candidate_scores=(2.0, 1.0, 0.0)))
    s.log_event(FeedbackEvent("u0", "a", "click", request_id="r0", timestamp=1.5))
    s.close()
    res = runner.invoke(app, ["ope", "--store", str(src), "--policy", "greedy", "--n-boot", "20",
                              "--options", '{"objectives": {"must": ["zz"]}}', "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["rounds"] == 1 and body["estimates"]["ips"]["value"] == pytest.approx(2.0)


def test_import_where_every_line_failed_exits_3(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{broken\n{"type": "click"}\n')
    res = runner.invoke(app, ["import", str(bad), "--store", str(tmp_path / "s.sqlite"), "--json"])
    assert res.exit_code == 3
    assert json.loads(res.stdout)["skipped"] == 2
    src = tmp_path / "a.sqlite"
    _fill(src)
    good = tmp_path / "fb.jsonl"
    assert runner.invoke(app, ["export", "--store", str(src), "--out", str(good)]).exit_code == 0
    again = tmp_path / "s2.sqlite"  # importing twice writes nothing new: still a success
    for _ in range(2):
        assert runner.invoke(app, ["import", str(good), "--store", str(again)]).exit_code == 0


def test_export_json_without_out_is_one_json_document(tmp_path):
    src = tmp_path / "a.sqlite"
    _fill(src)
    res = runner.invoke(app, ["export", "--store", str(src), "--what", "events", "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert (body["impressions"], body["events"], len(body["records"])) == (0, 30, 30)
    assert {r["type"] for r in body["records"]} == {"event"}
    plain = runner.invoke(app, ["export", "--store", str(src)])  # JSON lines, as import reads
    assert len(plain.stdout.splitlines()) == 60


@pytest.mark.parametrize("command", [["stats"], ["export"], ["pairs", "--out", "p.jsonl"],
                                     ["ope", "--policy", "greedy"]])
def test_readers_refuse_a_store_that_does_not_exist(command, tmp_path, monkeypatch):
    """A mistyped --store became a new empty database and printed zeros with exit 0."""
    from llmrank.errors import DataError

    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo.sqlite"
    res = runner.invoke(app, [*command, "--store", str(missing)])
    assert isinstance(res.exception, DataError) and "typo.sqlite" in str(res.exception)
    assert not missing.exists() and not (tmp_path / "p.jsonl").exists()


def test_a_missing_store_exits_3_with_one_line(tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "llmrank.cli.main", "feedback", "stats", "--store",
                          str(tmp_path / "typo.sqlite")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 3 and "feedback store not found" in res.stderr, res.stderr


def test_import_prints_each_skipped_line_once(tmp_path, caplog):
    """Each skipped line was printed twice: a WARNING log and the command's 'skipped' line."""
    bad = tmp_path / "bad.jsonl"
    src = tmp_path / "a.sqlite"
    _fill(src)
    assert runner.invoke(app, ["export", "--store", str(src), "--out", str(bad)]).exit_code == 0
    with bad.open("a") as fh:
        fh.write("{broken\n" * 25)
    with caplog.at_level("WARNING"):
        res = runner.invoke(app, ["import", str(bad), "--store", str(tmp_path / "b.sqlite")])
    assert res.exit_code == 0, res.output
    assert not [r for r in caplog.records if "malformed" in r.getMessage()]
    out = " ".join(res.output.split())
    assert out.count(":61:") == 1 and out.count("skipped ") == 21 and "skipped 5 more lines" in out


def _interrupt_after_one_line(*args, **kwargs):
    fh = next(a for a in (*args, *kwargs.values()) if hasattr(a, "write"))
    fh.write('{"partial": true}\n')
    raise KeyboardInterrupt


@pytest.mark.parametrize(("command", "target"), [
    (["export"], "llmrank.feedback.jsonl.export_jsonl"),
    (["pairs"], "llmrank.feedback.pairs.write_pairs_jsonl"),
])
def test_an_interrupted_write_leaves_the_old_file_or_none(command, target, tmp_path, monkeypatch):
    """Ctrl-C in the middle of `export --out` / `pairs --out` left a half-written file there
    (and `import` of it then read a truncated log as complete)."""
    src = tmp_path / "a.sqlite"
    _fill(src)
    dest = tmp_path / "dest"
    dest.mkdir()
    out = dest / "out.jsonl"
    module, name = target.rsplit(".", 1)
    monkeypatch.setattr(__import__(module, fromlist=[name]), name, _interrupt_after_one_line)
    res = runner.invoke(app, [*command, "--store", str(src), "--out", str(out)])
    assert res.exit_code == 130  # click's answer to Ctrl-C
    assert list(dest.iterdir()) == []
    out.write_text("old\n")
    res = runner.invoke(app, [*command, "--store", str(src), "--out", str(out)])
    assert res.exit_code == 130  # click's answer to Ctrl-C
    assert out.read_text() == "old\n" and list(dest.iterdir()) == [out]


@pytest.mark.parametrize("command", [["export"], ["pairs"]])
def test_out_in_a_folder_not_yet_made(command, tmp_path):
    """--out new/x.jsonl was a FileNotFoundError traceback."""
    src = tmp_path / "a.sqlite"
    _fill(src)
    out = tmp_path / "new" / "x.jsonl"
    res = runner.invoke(app, [*command, "--store", str(src), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["file"] == str(out) and out.read_text().count("\n") > 0


@pytest.mark.parametrize("command", [["export", "--what", "nope"],
                                     ["pairs", "--out", "p.jsonl", "--negatives", "nope"],
                                     ["ope", "--policy", "greedy", "--options", "[1]"],
                                     ["ope", "--policy", "greedy", "--options", "3"]])
def test_a_bad_flag_value_is_a_usage_error(command, tmp_path, monkeypatch):
    """A bad --what / --negatives exited 1 (as a library failure, not 2: usage); --options
    that is JSON but not an object was a TypeError traceback."""
    from llmrank.cli.common import exit_code_for

    monkeypatch.chdir(tmp_path)
    src = tmp_path / "a.sqlite"
    _fill(src)
    res = runner.invoke(app, [*command, "--store", str(src), "--json"])
    assert res.exit_code != 0 and res.stdout == ""
    code = res.exit_code if res.exception is None or isinstance(res.exception, SystemExit) \
        else exit_code_for(res.exception)
    assert code == 2, repr(res.exception)
    assert not (tmp_path / "p.jsonl").exists()


def test_ope_says_why_there_are_no_rounds(tmp_path):
    """`ope` on an empty store, or with a --logged-policy no impression has, said "no impressions
    with candidate lists in the store" either way: wrong when the store has such impressions."""
    empty = tmp_path / "empty.sqlite"
    SqliteFeedbackStore(empty).close()
    res = runner.invoke(app, ["ope", "--store", str(empty), "--policy", "greedy"])
    assert "no impressions" in str(res.exception) and "empty" in str(res.exception)
    src = tmp_path / "a.sqlite"
    _fill(src)
    res = runner.invoke(app, ["ope", "--store", str(src), "--policy", "greedy", "--logged-policy", "softmax"])
    msg = str(res.exception)
    assert "softmax" in msg and "egreedy" in msg, msg  # names the policies that are logged
    bare = tmp_path / "bare.sqlite"
    s = SqliteFeedbackStore(bare)
    s.log_impression(Impression("r0", "u0", ("a", "b"), (2.0, 1.0), (1.0, 1.0), "greedy", timestamp=1.0))
    s.close()
    res = runner.invoke(app, ["ope", "--store", str(bare), "--policy", "greedy"])
    assert "1 impression" in str(res.exception) and "candidate" in str(res.exception)


def test_ope_and_pairs_leave_out_impressions_too_young_to_have_their_clicks(tmp_path):
    """A slate logged seconds ago has no clicks yet: OPE counted it as zero reward and pairs
    made all of its items rejected. Like the policy's learn(), both wait --settle seconds."""
    import time

    src = tmp_path / "a.sqlite"
    _fill(src)
    s = SqliteFeedbackStore(src)
    now = time.time()
    for r in range(5):  # just shown, not clicked yet
        s.log_impression(Impression(f"new{r}", "u9", ("b", "a", "c"), (3.0, 2.0, 1.0), (0.5, 0.5, 1.0),
                                    "egreedy", timestamp=now - 10, candidates=("a", "b", "c"),
                                    candidate_scores=(3.0, 2.0, 1.0)))
    s.log_event(FeedbackEvent("u9", "a", "click", request_id="new0", timestamp=now - 5))
    s.close()
    settled = runner.invoke(app, ["ope", "--store", str(src), "--policy", "greedy", "--n-boot", "50", "--json"])
    assert settled.exit_code == 0, settled.output
    assert json.loads(settled.stdout)["rounds"] == 30
    everything = runner.invoke(app, ["ope", "--store", str(src), "--policy", "greedy", "--n-boot", "50",
                                     "--settle", "0", "--json"])
    assert json.loads(everything.stdout)["rounds"] == 35
    for settle, n_new in (("3600", 0), ("0", 2)):  # new0: a clicked over b and c
        res = runner.invoke(app, ["pairs", "--store", str(src), "--out", str(tmp_path / f"p{settle}.jsonl"),
                                  "--settle", settle, "--json"])
        assert res.exit_code == 0, res.output
        rows = [json.loads(x) for x in (tmp_path / f"p{settle}.jsonl").read_text().splitlines()]
        assert sum(r.get("request_id") == "new0" for r in rows) == n_new, rows[:2]


def test_ope_on_only_unsettled_impressions_says_so(tmp_path):
    import time

    src = tmp_path / "young.sqlite"
    s = SqliteFeedbackStore(src)
    s.log_impression(Impression("r0", "u0", ("a", "b"), (2.0, 1.0), (0.5, 0.5), "softmax",
                                timestamp=time.time(), candidates=("a", "b"), candidate_scores=(2.0, 1.0)))
    s.close()
    res = runner.invoke(app, ["ope", "--store", str(src), "--policy", "greedy"])
    assert "younger than --settle" in str(res.exception)


@pytest.mark.parametrize("command", [["stats"], ["import", "in.jsonl"]])
@pytest.mark.parametrize("store", ["notes.csv", "folder"])
def test_a_store_that_is_not_a_sqlite_file_exits_3_with_one_line(command, store, tmp_path):
    """--store naming a text file or a folder ended in a sqlite3 traceback (exit 1)."""
    import subprocess
    import sys

    (tmp_path / "notes.csv").write_text("user,item\n1,2\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "in.jsonl").write_text("")
    res = subprocess.run([sys.executable, "-m", "llmrank.cli.main", "feedback", *command, "--store", store,
                          "--json"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr and store in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""


@pytest.mark.parametrize("command", [["stats"], ["export"]])
def test_a_read_only_command_on_an_empty_file_exits_3_and_leaves_it_empty(command, tmp_path):
    """`feedback stats --store EMPTYFILE` turned the 0-byte file into a SQLite store and printed
    zeros: a read-only command wrote to the user's file."""
    import subprocess
    import sys

    (tmp_path / "empty").write_bytes(b"")
    res = subprocess.run([sys.executable, "-m", "llmrank.cli.main", "feedback", *command, "--store", "empty"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    assert "not a feedback store" in res.stderr and "empty" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""
    assert (tmp_path / "empty").read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


@pytest.mark.parametrize("command", [["export"], ["pairs"]])
def test_out_that_is_a_folder_names_it_and_says_so(command, tmp_path):
    """`export -o DIR` failed at the final rename with "Is a directory: '.adir.4546.tmp' ->
    'adir'": the hidden temporary file, not the path given. Now one line naming --out DIR."""
    import subprocess
    import sys

    _fill(tmp_path / "a.sqlite")
    (tmp_path / "adir").mkdir()
    res = subprocess.run([sys.executable, "-m", "llmrank.cli.main", "feedback", *command, "--store", "a.sqlite",
                          "-o", "adir"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and ".tmp" not in res.stderr, res.stderr
    assert "--out adir" in res.stderr and "folder" in res.stderr, res.stderr
    assert list((tmp_path / "adir").iterdir()) == []
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_out_under_a_file_names_the_file_in_the_way(tmp_path, monkeypatch):
    """`export -o small.csv/x.jsonl` said "cannot write small.csv/x.jsonl: File exists"."""
    from llmrank.errors import DataError

    monkeypatch.chdir(tmp_path)
    _fill(tmp_path / "a.sqlite")
    (tmp_path / "small.csv").write_text("x\n")
    for out in ("small.csv/x.jsonl", "small.csv/sub/x.jsonl"):
        res = runner.invoke(app, ["export", "--store", "a.sqlite", "-o", out])
        assert isinstance(res.exception, DataError), res.output
        assert str(res.exception).startswith(f"cannot write --out {out}: ")
        assert "small.csv is a file, not a folder" in str(res.exception), str(res.exception)
