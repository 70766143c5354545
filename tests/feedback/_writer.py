"""Writer process for the concurrency and crash tests (run as a script, not collected).

usage: python _writer.py DB TAG N_BATCHES BATCH_SIZE SYNCHRONOUS [HOLD_AT]
Writes N_BATCHES batches (forever when N_BATCHES < 0); after each batch's write call returns it
prints the batch's event ids, one per line, and flushes: a printed id is an acknowledged one.
With HOLD_AT, batch HOLD_AT stops inside its transaction, after all its rows are inserted and
before COMMIT, prints "MID" and waits there to be killed."""

from __future__ import annotations

import sys
import time

from llmrank.feedback.records import FeedbackEvent, Impression
from llmrank.feedback.sqlite_store import SqliteFeedbackStore


def main() -> None:
    db, tag, n_batches, size, sync = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    hold_at = int(sys.argv[6]) if len(sys.argv) > 6 else -1
    store = SqliteFeedbackStore(db, synchronous=sync)  # type: ignore[arg-type]
    insert_event = SqliteFeedbackStore._insert_event

    def insert_then_hold(c, ev):  # type: ignore[no-untyped-def]
        n = insert_event(c, ev)
        if ev.event_id == f"{tag}-b{hold_at}-e{size - 1}":  # the held batch's last row
            assert c.in_transaction
            sys.stdout.write("MID\n")
            sys.stdout.flush()
            time.sleep(600)
        return n

    store._insert_event = insert_then_hold  # type: ignore[method-assign]
    b = 0
    while n_batches < 0 or b < n_batches:
        rid = f"{tag}-r{b}"
        items = tuple(f"i{j}" for j in range(3))
        imp = Impression(rid, f"u-{tag}", items, (0.3, 0.2, 0.1), (1.0, 1.0, 1.0), "greedy")
        events = [FeedbackEvent(f"u-{tag}", items[j % 3], "click", request_id=rid,
                                event_id=f"{tag}-b{b}-e{j}") for j in range(size)]
        if size == 1:
            store.log_impression(imp)
            store.log_event(events[0])
        else:
            store.log_many([imp], events)
        sys.stdout.write("".join(ev.event_id + "\n" for ev in events))
        sys.stdout.flush()
        b += 1
    store.close()


if __name__ == "__main__":
    main()
