from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmrank.errors import FeedbackError
from llmrank.feedback import FeedbackEvent, FeedbackStore, Impression, open_store
from llmrank.feedback.sqlite_store import SqliteFeedbackStore

WRITER = Path(__file__).with_name("_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def _imp(rid: str, user: str = "u1", ts: float = 1.0) -> Impression:
    return Impression(rid, user, ("a", "b", "c"), (0.9, 0.5, 0.1), (0.8, 0.5, 0.25), "softmax",
                      timestamp=ts, candidates=("a", "b", "c", "d"),
                      candidate_scores=(0.9, 0.5, 0.1, 0.0), propensity_method="exact",
                      context={"segment": "s1"})


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_round_trip_and_filters(tmp_path):
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    assert isinstance(store, FeedbackStore)
    store.log_impression(_imp("r1", ts=1.0))
    store.log_impression(_imp("r2", user="u2", ts=2.0))
    ev = FeedbackEvent("u1", "b", "click", request_id="r1", position=1, timestamp=1.5)
    store.log_event(ev)
    store.log_event(FeedbackEvent("u1", "a", "rating", value=4.5, request_id="r1", timestamp=1.6))
    store.close()

    again = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    assert again.impression("r1") == _imp("r1", ts=1.0)
    assert [i.request_id for i in again.impressions()] == ["r1", "r2"]
    assert [i.request_id for i in again.impressions(user_id="u2")] == ["r2"]
    assert [i.request_id for i in again.impressions(since=1.5)] == ["r2"]
    events = list(again.events(request_id="r1"))
    assert events[0] == ev and events[1].kind == "rating" and events[1].value == 4.5
    assert [e.kind for e in again.events(kind="rating")] == ["rating"]
    assert again.counts() == {"impressions": 2, "events": 2, "click": 1, "rating": 1, "skip": 0}
    assert again.integrity_check() == "ok"
    mode = again._read("PRAGMA journal_mode")[0][0]
    assert mode == "wal"


def test_writes_are_idempotent_and_conflicts_raise(tmp_path):
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    ev = FeedbackEvent("u1", "a", "click", request_id="r1", event_id="e1")
    store.log_impression(_imp("r1"))
    store.log_impression(_imp("r1"))  # a retry of the same slate is a no-op
    store.log_event(ev)
    store.log_event(ev)
    assert store.counts()["events"] == 1 and store.counts()["impressions"] == 1
    other = Impression("r1", "u1", ("x",), (1.0,), (1.0,), "greedy")
    with pytest.raises(FeedbackError, match="different slate"):
        store.log_impression(other)


def test_an_event_id_reused_for_another_event_is_a_conflict_not_a_silent_drop(tmp_path):
    """event_id is an idempotency key: the same event again (a retry; its timestamp may be
    stamped anew by the server) is stored once, but another event under the same id was
    acknowledged and dropped: the caller must hear of it."""
    from llmrank.errors import FeedbackConflictError

    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    store.log_event(FeedbackEvent("u1", "a", "click", request_id="r1", event_id="e1", timestamp=10.0))
    store.log_event(FeedbackEvent("u1", "a", "click", request_id="r1", event_id="e1", timestamp=11.0))
    for other in (FeedbackEvent("u1", "b", "click", request_id="r1", event_id="e1"),
                  FeedbackEvent("u1", "a", "skip", request_id="r1", event_id="e1"),
                  FeedbackEvent("u2", "a", "click", request_id="r1", event_id="e1"),
                  FeedbackEvent("u1", "a", "rating", value=4.0, request_id="r1", event_id="e1")):
        with pytest.raises(FeedbackConflictError, match="e1"):
            store.log_event(other)
    assert [(e.item_id, e.kind, e.timestamp) for e in store.events()] == [("a", "click", 10.0)]
    with pytest.raises(FeedbackConflictError, match="different slate"):
        store.log_impression(_imp("r9"))
        store.log_impression(Impression("r9", "u1", ("x",), (1.0,), (1.0,), "greedy"))


def test_batch_is_atomic(tmp_path):
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    good = FeedbackEvent("u1", "a", "click", event_id="ok")
    with pytest.raises(FeedbackError):
        # the second impression conflicts with the first: nothing of the batch may remain
        store.log_many([_imp("r1"), Impression("r1", "u", ("z",), (1.0,), (1.0,), "g")], [good])
    assert store.counts()["events"] == 0 and store.counts()["impressions"] == 0


def test_invalid_records_are_rejected():
    with pytest.raises(FeedbackError):
        Impression("r", "u", ("a", "b"), (1.0,), (1.0, 1.0), "g")
    with pytest.raises(FeedbackError):
        Impression("r", "u", ("a",), (1.0,), (0.0,), "g")  # zero propensity cannot be logged
    with pytest.raises(FeedbackError):
        Impression("r", "u", ("a",), (1.0,), (1.0,), "g", candidates=("b",))
    with pytest.raises(FeedbackError, match="not finite"):
        Impression("r", "u", ("a",), (float("nan"),), (1.0,), "g")  # SQLite would store NULL
    with pytest.raises(FeedbackError, match="not finite"):
        Impression("r", "u", ("a",), (1.0,), (1.0,), "g", candidates=("a", "b"),
                   candidate_scores=(1.0, float("inf")))
    with pytest.raises(FeedbackError):
        FeedbackEvent("u", "a", "purchase")
    with pytest.raises(FeedbackError):
        FeedbackEvent("u", "a", "rating")  # a rating needs a value
    with pytest.raises(FeedbackError, match="position"):
        FeedbackEvent("u", "a", "click", position=10**30)  # SQLite cannot store it
    with pytest.raises(FeedbackError, match="position"):
        FeedbackEvent("u", "a", "click", position=-1)


def test_open_store_uses_registry(tmp_path):
    from llmrank.config import FeedbackConfig

    store = open_store(FeedbackConfig(path=str(tmp_path / "x.sqlite")))
    assert isinstance(store, SqliteFeedbackStore) and store.synchronous == "FULL"
    assert store._read("PRAGMA synchronous")[0][0] == 2  # what the connection runs with: FULL
    assert store._read("PRAGMA journal_mode")[0][0] == "wal"


def test_durability_pragmas_are_those_of_the_connection(tmp_path):
    """The default store fsyncs every commit (synchronous = FULL = 2) in WAL mode; NORMAL (1)
    only when asked. Read back from the connection itself, not from the attribute, also on
    the connection a forked child opens (NORMAL there: SQLite's own default is FULL)."""
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    store.log_impression(_imp("r1"))
    assert store._read("PRAGMA synchronous")[0][0] == 2
    assert store._read("PRAGMA journal_mode")[0][0] == "wal"
    normal = SqliteFeedbackStore(tmp_path / "fb.sqlite", synchronous="NORMAL")
    assert normal._read("PRAGMA synchronous")[0][0] == 1
    assert normal._read("PRAGMA journal_mode")[0][0] == "wal"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh connection, same settings
        try:
            got = (normal._read("PRAGMA synchronous")[0][0], normal._read("PRAGMA journal_mode")[0][0])
            os.write(w, repr(got).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read()
    os.waitpid(pid, 0)
    assert got == "(1, 'wal')"


def test_concurrent_writer_processes_lose_nothing(tmp_path):
    db = str(tmp_path / "fb.sqlite")
    SqliteFeedbackStore(db).close()
    n_proc, n_batches = 4, 15
    procs = [subprocess.Popen([sys.executable, str(WRITER), db, f"w{p}", str(n_batches), "1", "FULL"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
             for p in range(n_proc)]
    acked: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        acked += out.split()
    assert len(acked) == n_proc * n_batches
    store = SqliteFeedbackStore(db)
    stored = {e.event_id for e in store.events()}
    assert stored == set(acked)
    assert store.counts()["impressions"] == n_proc * n_batches
    assert store.integrity_check() == "ok"


@pytest.mark.parametrize("sync", ["FULL", "NORMAL"])
def test_sigkill_while_writing_loses_no_acknowledged_event(tmp_path, sync):
    """Kill a writer in the middle of its work, three times over the same file: every id it
    printed (after the write call returned) is present, and batches are all-or-nothing."""
    db = str(tmp_path / "fb.sqlite")
    batch = 8
    acked: list[str] = []
    for round_no, wait_acks in enumerate((5, 17, 40)):
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), db, f"k{round_no}", "-1", str(batch), sync],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        assert proc.stdout is not None
        got: list[str] = []
        deadline = time.monotonic() + 60
        while len(got) < wait_acks * batch and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            got.append(line.strip())
        time.sleep(0.003 * round_no)  # vary the point in the write cycle where the kill lands
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        got += rest.split()  # ids flushed before the kill are acknowledged too
        assert proc.returncode == -signal.SIGKILL
        assert len(got) >= wait_acks * batch
        acked += got

    store = SqliteFeedbackStore(db)  # the "restart"
    assert store.integrity_check() == "ok"
    stored = {e.event_id for e in store.events()}
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged events lost"
    per_batch: dict[str, int] = {}
    for eid in stored:
        key = eid.rsplit("-e", 1)[0]
        per_batch[key] = per_batch.get(key, 0) + 1
    assert set(per_batch.values()) == {batch}, "a batch was partially written"
    # every stored batch has its impression (same transaction)
    rids = {i.request_id for i in store.impressions()}
    assert {k.replace("-b", "-r") for k in per_batch} == rids


def test_counts_are_one_snapshot_while_another_process_writes(tmp_path, monkeypatch):
    """counts() read during writes: the total and the per-kind counts describe the same
    moment (separate reads let a write land between them: events != click + rating + skip)."""
    db = tmp_path / "fb.sqlite"
    reader, writer = SqliteFeedbackStore(db), SqliteFeedbackStore(db)
    writer.log_many([_imp("r1")], [FeedbackEvent("u1", "a", "click", request_id="r1")])
    real_read = reader._read
    n_writes = [0]

    def read_then_someone_writes(sql, args=()):
        rows = real_read(sql, args)
        n_writes[0] += 1
        writer.log_many([_imp(f"w{n_writes[0]}")], [FeedbackEvent("u1", "a", "skip")])
        return rows

    monkeypatch.setattr(reader, "_read", read_then_someone_writes)
    got = reader.counts()
    assert got["events"] == got["click"] + got["rating"] + got["skip"], got
    assert (got["impressions"], got["events"]) == (1, 1), got


@pytest.mark.parametrize("sync", ["FULL", "NORMAL"])
def test_sigkill_inside_a_transaction_keeps_every_acknowledged_batch_and_none_of_the_open_one(tmp_path, sync):
    """Not left to timing: the writer is killed while a batch is inside its transaction with
    every row inserted, COMMIT not yet run. Every acknowledged batch is stored and nothing of
    the open one, and the file is sound for the next writer."""
    db = str(tmp_path / "fb.sqlite")
    batch, hold_at = 8, 6
    proc = subprocess.Popen([sys.executable, str(WRITER), db, "h", "-1", str(batch), sync, str(hold_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout is not None
    acked: list[str] = []
    for line in proc.stdout:
        if line.strip() == "MID":
            break
        acked.append(line.strip())
    else:
        pytest.fail(f"the writer ended before its held batch: {proc.stderr.read() if proc.stderr else ''}")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) == hold_at * batch

    store = SqliteFeedbackStore(db)
    assert store.integrity_check() == "ok"
    assert {e.event_id for e in store.events()} == set(acked)
    assert {i.request_id for i in store.impressions()} == {f"h-r{b}" for b in range(hold_at)}
    store.log_event(FeedbackEvent("u", "a", "click", event_id="after"))  # the lock died with it
    assert store.counts()["events"] == len(acked) + 1


def test_a_store_written_by_a_newer_schema_is_refused_and_left_alone(tmp_path):
    import sqlite3

    from llmrank.feedback.sqlite_store import SCHEMA_VERSION

    db = tmp_path / "fb.sqlite"
    SqliteFeedbackStore(db).log_impression(_imp("r1"))
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    for create in (True, False):
        with pytest.raises(FeedbackError, match="newer"):
            SqliteFeedbackStore(db, create=create)
    with sqlite3.connect(db) as conn:  # not stamped down to this version
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_an_event_value_that_is_not_finite_is_rejected_for_every_kind(tmp_path):
    """A NaN value was stored for a click or skip, and then its own retry (same event_id,
    same fields) was a FeedbackConflictError, because NaN != NaN; an export wrote it as NaN
    or Infinity, which is not JSON. Such a value is refused like a rating's."""
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    for kind in ("click", "skip", "rating"):
        for value in (float("nan"), float("inf"), -float("inf")):
            with pytest.raises(FeedbackError, match="finite"):
                store.log_event(FeedbackEvent("u1", "a", kind, value=value, event_id=f"{kind}{value}"))
    assert store.counts()["events"] == 0
    ok = FeedbackEvent("u1", "a", "skip", value=0.0, event_id="s")
    store.log_event(ok)
    store.log_event(ok)  # its retry is still a no-op
    assert store.counts()["events"] == 1


def test_an_impression_position_sqlite_cannot_store_is_rejected(tmp_path):
    """Positions are stored as SQLite INTEGERs, like an event's: 2**63 raised OverflowError
    out of the store (a JSON-lines import stopped there, its batch unwritten). It is a
    FeedbackError; the largest storable positions still round-trip."""
    for pos in (2**63, 10**30, -(2**63) - 1):
        with pytest.raises(FeedbackError, match="position"):
            Impression("r", "u", ("a", "b"), (1.0, 0.5), (1.0, 1.0), "g", positions=(0, pos))
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    big = Impression("r", "u", ("a", "b"), (1.0, 0.5), (1.0, 1.0), "g", positions=(2**63 - 1, -(2**63)))
    store.log_impression(big)
    assert store.impression("r") == big


def test_a_store_holding_an_infinite_event_value_from_before_still_reads(tmp_path):
    """Stores written before non-finite values were refused may hold an Infinity (SQLite
    itself keeps NaN as NULL): such a value reads as None, as a NaN always did, instead of
    every read of the events raising."""
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    store._write(lambda c: c.execute(
        "INSERT INTO events(event_id, request_id, user_id, item_id, kind, value, position, ts) "
        "VALUES ('old', NULL, 'u1', 'a', 'skip', 9e999, NULL, 1.0)").rowcount)
    assert [(e.event_id, e.value) for e in store.events()] == [("old", None)]


def test_time_windows_include_since_and_exclude_until_for_impressions_and_events(tmp_path):
    """The window contract of FeedbackStore: since <= timestamp < until, the same for both
    record kinds, so consecutive windows split a log without overlap or gap."""
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    store.log_many([_imp(f"r{t}", ts=float(t)) for t in (1, 2, 3)],
                   [FeedbackEvent("u1", "a", "click", request_id=f"r{t}", timestamp=float(t),
                                  event_id=f"e{t}") for t in (1, 2, 3)])
    assert [i.request_id for i in store.impressions(since=2.0, until=3.0)] == ["r2"]
    assert [e.event_id for e in store.events(since=2.0, until=3.0)] == ["e2"]
    halves = [[i.request_id for i in store.impressions(**w)] for w in ({"until": 2.0}, {"since": 2.0})]
    assert halves == [["r1"], ["r2", "r3"]]


@pytest.mark.parametrize("create", [True, False])
def test_a_path_that_is_not_a_sqlite_file_is_a_data_error_naming_it(tmp_path, create):
    """A --store (or [feedback] path) that is a text file or a folder raised sqlite3's own
    DatabaseError / OperationalError, which the CLI printed as a traceback; the file is left
    as it was."""
    from llmrank.errors import DataError

    text = tmp_path / "notes.csv"
    text.write_text("user,item\n1,2\n")
    with pytest.raises(DataError, match=r"notes\.csv"):
        SqliteFeedbackStore(text, create=create)
    assert text.read_text() == "user,item\n1,2\n"
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(DataError, match="folder"):
        SqliteFeedbackStore(folder, create=create)
    assert list(folder.iterdir()) == []


def test_a_reader_leaves_an_empty_file_or_another_database_as_it_was(tmp_path):
    """create=False (readers: feedback stats/export, DPO) opened a 0-byte file, or another
    program's SQLite database, and wrote the feedback schema into it (and switched it to WAL):
    a read-only command changed the user's file. It is a DataError naming the file, untouched."""
    import sqlite3

    from llmrank.errors import DataError

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty.*not a feedback store"):
        SqliteFeedbackStore(empty, create=False)
    assert empty.read_bytes() == b""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    before = other.read_bytes()
    with pytest.raises(DataError, match=r"other\.db.*not a feedback store"):
        SqliteFeedbackStore(other, create=False)
    assert other.read_bytes() == before
    with sqlite3.connect(other) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    SqliteFeedbackStore(tmp_path / "real.sqlite").log_impression(_imp("r1"))  # a store still opens
    assert SqliteFeedbackStore(tmp_path / "real.sqlite", create=False).counts()["impressions"] == 1
