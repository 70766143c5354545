"""SQLite feedback store: the embedded default.

Durability and concurrency, and why they hold:

* ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers;
  several processes open the same file, each with its own connection.
* Every write runs in ``BEGIN IMMEDIATE ... COMMIT``. IMMEDIATE takes the write lock up front,
  so two writers never deadlock upgrading a read lock; a writer that finds the lock taken waits
  (``busy_timeout``) instead of failing. A write method returns only after COMMIT returned:
  that return is the acknowledgement.
* ``synchronous=FULL`` (default): in WAL mode SQLite fsyncs the WAL at every commit, so an
  acknowledged record survives a killed process, an OS crash and a power cut.
  ``synchronous=NORMAL`` skips that fsync (the WAL is synced at checkpoints): a committed record
  is in the OS page cache, so it still survives the process being killed (SIGKILL), but the
  last commits may roll back on power loss. Choose NORMAL only for throughput where losing the
  last second of feedback on a power cut is acceptable.
* A transaction that was not committed when the process died is rolled back on the next open;
  batches (``log_many``) are therefore all-or-nothing.
* Connections are per process (re-opened after ``fork``) and guarded by a lock per store for
  threads.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from llmrank.errors import DataError, FeedbackConflictError, FeedbackError
from llmrank.feedback.records import EVENT_KINDS, FeedbackEvent, Impression

log = logging.getLogger(__name__)

T = TypeVar("T")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS impressions (
    request_id TEXT PRIMARY KEY,
    user_id TEXT,
    policy TEXT NOT NULL,
    ts REAL NOT NULL,
    k INTEGER NOT NULL,
    propensity_method TEXT NOT NULL,
    candidates TEXT NOT NULL,        -- JSON list of item ids
    candidate_scores TEXT NOT NULL,  -- JSON list of floats
    context TEXT NOT NULL            -- JSON object
);
CREATE INDEX IF NOT EXISTS impressions_ts ON impressions(ts);
CREATE INDEX IF NOT EXISTS impressions_user ON impressions(user_id, ts);
CREATE TABLE IF NOT EXISTS impression_items (
    request_id TEXT NOT NULL,
    slot INTEGER NOT NULL,           -- index in the shown list
    position INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    score REAL NOT NULL,
    propensity REAL NOT NULL,
    PRIMARY KEY (request_id, slot)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS impression_items_item ON impression_items(item_id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order
    event_id TEXT NOT NULL UNIQUE,
    request_id TEXT,
    user_id TEXT,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value REAL,
    position INTEGER,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_request ON events(request_id);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id, ts);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
"""


class SqliteFeedbackStore:
    """FeedbackStore on one SQLite file (``":memory:"`` works for tests, without durability)."""

    name = "sqlite"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        timeout: float = 30.0,
        create: bool = True,
    ) -> None:
        """``create`` False: the file must exist and already be a feedback store (DataError),
        for readers, where a mistyped path would otherwise become a new empty store that reads
        as no feedback; such a store is opened without creating or migrating anything, so an
        empty file or another program's database is left as it was."""
        if path is None:
            from llmrank.config import llmrank_home

            path = llmrank_home() / "feedback.sqlite"
        if synchronous not in ("FULL", "NORMAL"):
            raise FeedbackError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        self.path = str(path)
        self.synchronous = synchronous
        self.timeout = float(timeout)
        self.create = create
        self._lock = threading.RLock()
        self._conn_obj: sqlite3.Connection | None = None
        self._pid = -1
        if self.path != ":memory:":
            if not create and not Path(self.path).is_file():
                raise DataError(f"feedback store not found: {self.path}")
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._connection()  # create the schema now so that errors surface at construction

    # ---- connection ----------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn_obj is not None and self._pid == os.getpid():
            return self._conn_obj
        # a connection inherited through fork must not be used by the child: open a new one
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:  # a folder, a file this process may not open
            raise DataError(f"cannot open feedback store {self.path}: {exc}") from exc
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        if not self.create:
            self._check_is_store(conn)  # before anything below writes to the file
        if self.path != ":memory:":
            try:
                mode = self._retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            except sqlite3.DatabaseError as exc:  # 'file is not a database' (lock errors: FeedbackError)
                conn.close()
                raise DataError(f"{self.path} is not a SQLite feedback store: {exc}") from exc
            if str(mode).lower() != "wal":
                raise FeedbackError(f"{self.path}: could not enable WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        self._conn_obj, self._pid = conn, os.getpid()
        if self.create:
            self._write(self._create_schema)
        return conn

    def _check_is_store(self, conn: sqlite3.Connection) -> None:
        """For a reader: the file already holds the feedback tables at a schema this llmrank
        reads; read-only checks, so a file that fails them is not written to."""
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:  # 'file is not a database'
            conn.close()
            raise DataError(f"{self.path} is not a SQLite feedback store: {exc}") from exc
        if version > SCHEMA_VERSION:
            conn.close()
            raise FeedbackError(f"feedback store schema {version} is newer than this llmrank ({SCHEMA_VERSION})")
        if not {"impressions", "impression_items", "events"} <= tables:
            conn.close()
            what = "an empty file" if not tables and self.path != ":memory:" and \
                os.path.getsize(self.path) == 0 else "a database without the feedback tables"
            raise DataError(f"{self.path} is not a feedback store ({what}); a reader does not create one")

    def _retry_locked(self, fn: Callable[[], T]) -> T:
        """Switching to WAL needs a moment without other writers; wait for it like busy_timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise FeedbackError(f"{self.path}: {exc}") from exc
                time.sleep(0.01)

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> int:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise FeedbackError(f"feedback store schema {version} is newer than this llmrank ({SCHEMA_VERSION})")
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return 0

    def _write(self, fn: Callable[[sqlite3.Connection], int]) -> int:
        """Run ``fn`` in one IMMEDIATE transaction; returns after COMMIT (the acknowledgement)."""
        with self._lock:
            conn = self._conn_obj if self._pid == os.getpid() and self._conn_obj else self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise FeedbackError(f"{self.path}: cannot start a write ({exc})") from exc
            try:
                n = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return n

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, tuple(args)).fetchall()

    # ---- writes ----------------------------------------------------------------------------
    def log_impression(self, impression: Impression) -> str:
        self._write(lambda c: self._insert_impression(c, impression))
        return impression.request_id

    def log_event(self, event: FeedbackEvent) -> str:
        self._write(lambda c: self._insert_event(c, event))
        return event.event_id

    def log_many(self, impressions: Iterable[Impression] = (),
                 events: Iterable[FeedbackEvent] = ()) -> int:
        imps, evs = list(impressions), list(events)

        def txn(c: sqlite3.Connection) -> int:
            return (sum(self._insert_impression(c, imp) for imp in imps)
                    + sum(self._insert_event(c, ev) for ev in evs))

        return self._write(txn)

    @staticmethod
    def _insert_impression(c: sqlite3.Connection, imp: Impression) -> int:
        cur = c.execute(
            "INSERT OR IGNORE INTO impressions VALUES (?,?,?,?,?,?,?,?,?)",
            (imp.request_id, imp.user_id, imp.policy, imp.timestamp, len(imp.items),
             imp.propensity_method, json.dumps(list(imp.candidates)),
             json.dumps(list(imp.candidate_scores)), json.dumps(dict(imp.context))),
        )
        if cur.rowcount == 0:  # already logged: fine if it is the same slate (a retry)
            shown = [r[0] for r in c.execute(
                "SELECT item_id FROM impression_items WHERE request_id=? ORDER BY slot",
                (imp.request_id,))]
            if tuple(shown) != imp.items:
                raise FeedbackConflictError(
                    f"request {imp.request_id} was already logged with a different slate")
            return 0
        c.executemany(
            "INSERT INTO impression_items VALUES (?,?,?,?,?,?)",
            [(imp.request_id, slot, pos, item, score, prop) for slot, (pos, item, score, prop)
             in enumerate(zip(imp.positions, imp.items, imp.scores, imp.propensities, strict=True))],
        )
        return 1

    @staticmethod
    def _insert_event(c: sqlite3.Connection, ev: FeedbackEvent) -> int:
        cur = c.execute(
            "INSERT OR IGNORE INTO events(event_id, request_id, user_id, item_id, kind, value, "
            "position, ts) VALUES (?,?,?,?,?,?,?,?)",
            (ev.event_id, ev.request_id, ev.user_id, ev.item_id, ev.kind, ev.value,
             ev.position, ev.timestamp),
        )
        if cur.rowcount == 0:  # already stored: fine if it is the same event (a retry)
            stored = c.execute("SELECT request_id, user_id, item_id, kind, value, position "
                               "FROM events WHERE event_id=?", (ev.event_id,)).fetchone()
            # the timestamp is left out: a server stamps a resent event anew
            if stored != (ev.request_id, ev.user_id, ev.item_id, ev.kind, ev.value, ev.position):
                raise FeedbackConflictError(
                    f"event {ev.event_id} was already logged as {stored[3]} of item {stored[2]!r} "
                    f"by user {stored[1]!r}; a different event needs its own event_id")
        return int(cur.rowcount)

    # ---- reads -----------------------------------------------------------------------------
    def impression(self, request_id: str) -> Impression | None:
        found = list(self._impressions("i.request_id = ?", [request_id]))
        return found[0] if found else None

    def impressions(self, *, user_id: str | None = None, policy: str | None = None,
                    since: float | None = None, until: float | None = None) -> Iterator[Impression]:
        where, args = _filters({"i.user_id": user_id, "i.policy": policy}, "i.ts", since, until)
        return self._impressions(where, args)

    def _impressions(self, where: str, args: list[Any]) -> Iterator[Impression]:
        rows = self._read(
            "SELECT i.request_id, i.user_id, i.policy, i.ts, i.propensity_method, i.candidates, "
            "i.candidate_scores, i.context, it.position, it.item_id, it.score, it.propensity "
            f"FROM impressions i JOIN impression_items it ON it.request_id = i.request_id "
            f"WHERE {where} ORDER BY i.ts, i.request_id, it.slot", args)
        group: list[tuple[Any, ...]] = []
        for row in rows:
            if group and row[0] != group[0][0]:
                yield _to_impression(group)
                group = []
            group.append(row)
        if group:
            yield _to_impression(group)

    def events(self, *, request_id: str | None = None, user_id: str | None = None,
               kind: str | None = None, since: float | None = None,
               until: float | None = None) -> Iterator[FeedbackEvent]:
        if kind is not None and kind not in EVENT_KINDS:
            raise FeedbackError(f"unknown event kind {kind!r}")
        where, args = _filters({"request_id": request_id, "user_id": user_id, "kind": kind},
                               "ts", since, until)
        rows = self._read(
            "SELECT user_id, item_id, kind, value, request_id, position, ts, event_id FROM events "
            f"WHERE {where} ORDER BY ts, seq", args)
        for r in rows:
            # an Infinity stored before non-finite values were refused reads as None, as SQLite
            # returns a NaN (it stores NaN as NULL)
            value = r[3] if r[3] is None or math.isfinite(r[3]) else None
            yield FeedbackEvent(user_id=r[0], item_id=r[1], kind=r[2], value=value, request_id=r[4],
                                position=r[5], timestamp=r[6], event_id=r[7])

    def counts(self) -> dict[str, int]:
        # one statement, so one snapshot: separate reads let a concurrent write land between
        # them (a total that is not the sum of its kinds)
        per_kind = ", ".join(f"COALESCE(SUM(kind = '{k}'), 0)" for k in EVENT_KINDS)
        row = self._read(f"SELECT (SELECT COUNT(*) FROM impressions), COUNT(*), {per_kind} FROM events")[0]
        return dict(zip(("impressions", "events", *EVENT_KINDS), (int(n) for n in row), strict=True))

    def integrity_check(self) -> str:
        """SQLite's own consistency check ('ok' when the file is sound)."""
        return str(self._read("PRAGMA integrity_check")[0][0])

    def close(self) -> None:
        with self._lock:
            if self._conn_obj is not None and self._pid == os.getpid():
                self._conn_obj.close()
            self._conn_obj = None

    def __enter__(self) -> SqliteFeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteFeedbackStore({self.path!r}, synchronous={self.synchronous})"


def _filters(equal: dict[str, Any], ts_col: str, since: float | None,
             until: float | None) -> tuple[str, list[Any]]:
    clauses, args = ["1=1"], []
    for col, value in equal.items():
        if value is not None:
            clauses.append(f"{col} = ?")
            args.append(value)
    if since is not None:
        clauses.append(f"{ts_col} >= ?")
        args.append(since)
    if until is not None:
        clauses.append(f"{ts_col} < ?")
        args.append(until)
    return " AND ".join(clauses), args


def _to_impression(rows: list[tuple[Any, ...]]) -> Impression:
    r0 = rows[0]
    return Impression(
        request_id=r0[0], user_id=r0[1], policy=r0[2], timestamp=r0[3],
        propensity_method=r0[4], candidates=tuple(json.loads(r0[5])),
        candidate_scores=tuple(json.loads(r0[6])), context=json.loads(r0[7]),
        positions=tuple(r[8] for r in rows), items=tuple(r[9] for r in rows),
        scores=tuple(r[10] for r in rows), propensities=tuple(r[11] for r in rows),
    )
