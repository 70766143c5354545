from __future__ import annotations

import io
import json

import pytest

from llmrank.errors import FeedbackError, MalformedLineError
from llmrank.feedback import FeedbackEvent, Impression
from llmrank.feedback.jsonl import export_jsonl, import_jsonl
from llmrank.feedback.sqlite_store import SqliteFeedbackStore


def _filled(path) -> SqliteFeedbackStore:
    store = SqliteFeedbackStore(path)
    store.log_impression(Impression("r1", "u1", ("a", "b"), (2.0, 1.0), (0.7, 0.4), "softmax",
                                    timestamp=10.0, candidates=("a", "b", "c"),
                                    candidate_scores=(2.0, 1.0, 0.5), propensity_method="exact",
                                    context={"segment": "x"}))
    store.log_event(FeedbackEvent("u1", "b", "click", request_id="r1", timestamp=11.0, event_id="e1"))
    store.log_event(FeedbackEvent("u1", "a", "skip", request_id="r1", timestamp=12.0, event_id="e2"))
    return store


def test_export_import_round_trip(tmp_path):
    src = _filled(tmp_path / "a.sqlite")
    buf = io.StringIO()
    assert export_jsonl(src, buf) == {"impressions": 1, "events": 2}
    path = tmp_path / "fb.jsonl"
    path.write_text(buf.getvalue())
    dst = SqliteFeedbackStore(tmp_path / "b.sqlite")
    counts = import_jsonl(dst, path)
    assert counts["written"] == 3 and counts["skipped"] == 0
    again = io.StringIO()
    export_jsonl(dst, again)
    assert again.getvalue() == buf.getvalue()
    # idempotent: importing twice writes nothing new
    assert import_jsonl(dst, path)["written"] == 0


def test_malformed_lines_reported_with_line_numbers(tmp_path):
    src = _filled(tmp_path / "a.sqlite")
    buf = io.StringIO()
    export_jsonl(src, buf)
    good = buf.getvalue().splitlines()
    bad_event = json.dumps({"type": "event", "event_id": "e9", "item_id": "a", "kind": "buy",
                            "timestamp": 1.0})
    lines = [good[0], "{not json", good[1], bad_event, '["list"]', good[2]]
    counts, report, _, path = _import_lines(tmp_path, lines)
    assert counts["skipped"] == 3 and counts["written"] == 3  # the rest is never lost
    assert [p.split(":")[1] for p in report.problems] == ["2", "4", "5"]
    assert "kind" in report.problems[1]

    with pytest.raises(MalformedLineError) as exc:
        import_jsonl(SqliteFeedbackStore(tmp_path / "c.sqlite"), path, on_error="raise")
    assert exc.value.line_no == 2


def _import_lines(tmp_path, lines: list[str]):
    """``lines`` written as a JSON-lines file and imported into a new store: (counts, the
    load report, the store, the file)."""
    from llmrank.data.lines import LoadReport

    path = tmp_path / "fb.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = LoadReport()
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    return import_jsonl(store, path, report=report), report, store, path


def _imp_line(rid: str, items: list[str], score: str = "1.0") -> str:
    """An impression line; ``score`` is written as is (NaN is what json.dumps would write)."""
    scores = ", ".join([score] * len(items))
    props = ", ".join(["1.0"] * len(items))
    return (f'{{"type": "impression", "request_id": "{rid}", "items": {json.dumps(items)}, '
            f'"scores": [{scores}], "propensities": [{props}], "policy": "greedy", "timestamp": 1000.0}}')


def _ev_line(eid: str, rid: str) -> str:
    return json.dumps({"type": "event", "event_id": eid, "request_id": rid, "item_id": "a",
                       "kind": "click", "timestamp": 1001.0})


@pytest.mark.parametrize(("bad", "reason"), [
    (_imp_line("r0", ["z", "y"]), "already logged with a different slate"),
    (_imp_line("rnan", ["a"], "NaN"), "not finite"),
])
def test_a_record_the_store_refuses_skips_only_its_line(tmp_path, bad, reason):
    """A conflicting duplicate request_id or a NaN score is one bad line: it is reported with
    its line number and the rest of its batch is written."""
    lines = [line for i in range(10) for line in (_imp_line(f"r{i}", ["a", "b"]), _ev_line(f"e{i}", f"r{i}"))]
    lines.insert(5, bad)
    counts, report, store, path = _import_lines(tmp_path, lines)
    assert counts == {"impressions": 10, "events": 10, "written": 20, "skipped": 1}
    assert store.counts()["impressions"] == 10 and store.counts()["events"] == 10
    assert len(report.problems) == 1 and ":6:" in report.problems[0] and reason in report.problems[0]
    with pytest.raises(MalformedLineError) as exc:
        import_jsonl(SqliteFeedbackStore(tmp_path / "other.sqlite"), path, on_error="raise")
    assert exc.value.line_no == 6


def test_an_id_with_a_lone_surrogate_is_a_bad_line_not_a_crash(tmp_path):
    """JSON may escape half of an emoji ("\\ud83c"): SQLite cannot store such an id (a
    UnicodeEncodeError traceback that stopped the import). It is a reported bad line."""
    lines = [_imp_line("r0", ["a", "b"]),
             json.dumps({"type": "event", "event_id": "e\ud83c", "request_id": "r0", "item_id": "a",
                         "kind": "click", "timestamp": 1.0}),
             _imp_line("r1", ["a", "b\ud83c"]),
             _ev_line("e1", "r0")]
    counts, report, store, path = _import_lines(tmp_path, lines)
    assert counts == {"impressions": 1, "events": 1, "written": 2, "skipped": 2}
    assert [p.split(":")[1] for p in report.problems] == ["2", "3"]
    assert all("UTF-8" in p for p in report.problems), report.problems
    with pytest.raises(MalformedLineError) as exc:
        import_jsonl(SqliteFeedbackStore(tmp_path / "other.sqlite"), path, on_error="raise")
    assert exc.value.line_no == 2
    with pytest.raises(FeedbackError, match="UTF-8"):
        store.log_event(FeedbackEvent("u\udc00", "a", "click"))  # a typed error, not UnicodeEncodeError


def test_round_trip_keeps_every_field_exactly(tmp_path):
    """Export then import into a fresh store gives the same records: the awkward values too
    (an empty propensity_method, floats at the ends of their range, Unicode and NUL in ids,
    None next to empty strings)."""
    imp = Impression("r\x00é🎬", "", ("a\x00b", "ü"), (0.1 + 0.2, 1e-310), (1 / 3, 5e-324), "p",
                     timestamp=1700000000.123456789, candidates=("a\x00b", "ü", "ж"),
                     candidate_scores=(1e308, -1e-308, 0.0), propensity_method="",
                     context={"history": ["ж"], "segment": None})
    events = [FeedbackEvent(None, "a\x00b", "rating", value=4.000000000000001, request_id="r\x00é🎬",
                            position=0, timestamp=1700000001.1, event_id="é\x00"),
              FeedbackEvent("", "ü", "skip", event_id="e2", timestamp=0.1)]
    src = SqliteFeedbackStore(tmp_path / "a.sqlite")
    src.log_many([imp], events)
    buf = io.StringIO()
    export_jsonl(src, buf)
    path = tmp_path / "fb.jsonl"
    path.write_text(buf.getvalue(), encoding="utf-8")
    dst = SqliteFeedbackStore(tmp_path / "b.sqlite")
    assert import_jsonl(dst, path)["written"] == 3
    assert list(dst.impressions()) == [imp]
    assert next(dst.impressions()).propensity_method == ""
    assert list(dst.events()) == sorted(events, key=lambda e: e.timestamp)


@pytest.mark.parametrize("bad", ["{not json", _imp_line("r0", ["z", "y"]), "{\"type\": \"\udcff\"}"])
def test_on_error_raise_stops_at_the_bad_line_with_every_line_before_it_written(tmp_path, bad):
    """'raise' stops the import at the first bad line, and what is in the store is the same
    whatever made the line bad: every record before it, none after (a malformed line dropped
    the lines before it that were still waiting in the batch; a refused record did not)."""
    lines = [line for i in range(4) for line in (_imp_line(f"r{i}", ["a", "b"]), _ev_line(f"e{i}", f"r{i}"))]
    lines.insert(3, bad)
    path = tmp_path / "fb.jsonl"
    # the third case is a line that is not UTF-8 (byte FF)
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    with pytest.raises(MalformedLineError) as exc:
        import_jsonl(store, path, on_error="raise")
    assert exc.value.line_no == 4
    assert [i.request_id for i in store.impressions()] == ["r0", "r1"]
    assert [e.event_id for e in store.events()] == ["e0"]


def test_a_position_too_large_for_sqlite_is_one_bad_line_not_a_crash(tmp_path):
    """An impression line with a position of 2**64 raised OverflowError from SQLite, which
    stopped the import and lost every line of its batch; it is a reported bad line."""
    bad = json.loads(_imp_line("rbig", ["a"]))
    bad["positions"] = [2**64]
    lines = [_imp_line("r0", ["a", "b"]), json.dumps(bad), _ev_line("e0", "r0")]
    counts, report, _, _ = _import_lines(tmp_path, lines)
    assert counts == {"impressions": 1, "events": 1, "written": 2, "skipped": 1}
    assert len(report.problems) == 1 and ":2:" in report.problems[0] and "position" in report.problems[0]


@pytest.mark.parametrize("number", ["9" * 400, "1" * 5000])
def test_a_number_too_large_for_a_float_is_one_bad_line_not_a_crash(tmp_path, number):
    """An integer literal beyond a double (a rating value, a timestamp, a score) raised
    OverflowError, and one beyond Python's 4300-digit limit a ValueError from the JSON parser:
    either stopped the import with a traceback and lost the good lines of its batch."""
    bad_event = _ev_line("ebig", "r0").replace('"timestamp": 1001.0', f'"timestamp": {number}')
    bad_imp = _imp_line("rbig", ["a"], number)
    lines = [_imp_line("r0", ["a", "b"]), bad_event, bad_imp, _ev_line("e0", "r0")]
    counts, report, _, _ = _import_lines(tmp_path, lines)
    assert counts == {"impressions": 1, "events": 1, "written": 2, "skipped": 2}
    assert [p.split(":")[1] for p in report.problems] == ["2", "3"]


def test_a_context_holding_a_lone_surrogate_exports_and_imports_back_unchanged(tmp_path):
    """Ids are refused when they hold a lone UTF-16 surrogate, but the context (history ids
    from a request, a segment) is not checked and the store keeps it (escaped); the export
    wrote it raw and failed with UnicodeEncodeError on a UTF-8 file, leaving the store
    unexportable. Such a line is written with JSON escapes, which read back as the same text."""
    imp = Impression("r1", "u1", ("a",), (1.0,), (1.0,), "greedy", timestamp=5.0,
                     context={"history": ["x\ud83c", "é"], "segment": "\udcff"})
    other = Impression("r2", "u1", ("a",), (1.0,), (1.0,), "greedy", timestamp=7.0, context={"segment": "é"})
    src = SqliteFeedbackStore(tmp_path / "a.sqlite")
    src.log_many([imp, other], [FeedbackEvent("u1", "a", "click", request_id="r1", timestamp=6.0, event_id="e1")])
    path = tmp_path / "fb.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        assert export_jsonl(src, fh) == {"impressions": 2, "events": 1}
    dst = SqliteFeedbackStore(tmp_path / "b.sqlite")
    assert import_jsonl(dst, path) == {"impressions": 2, "events": 1, "written": 3, "skipped": 0}
    assert list(dst.impressions()) == [imp, other]
    assert '"segment": "é"' in path.read_text(encoding="utf-8")  # other lines keep their text unescaped
