"""BatchRun: the bookkeeping every engine shares (inputs, outputs, report)."""

from __future__ import annotations

import pytest
from batch_fakes import GOOD, write_requests

from llmrank.batch.local import LocalBatchEngine
from llmrank.errors import DataError


@pytest.mark.parametrize(("src_name", "out_name"), [("req.jsonl", "req.jsonl"),
                                                    ("x.jsonl.errors.jsonl", "x.jsonl"),
                                                    ("x.jsonl.meta.json", "x.jsonl")])
def test_an_output_that_is_the_input_is_refused_even_with_overwrite(rec, tmp_path, src_name, out_name):
    """overwrite=True (--overwrite) unlinks the output files first: naming the input as the
    output (or as its errors or meta file) deleted the user's requests."""
    src = write_requests(tmp_path / src_name, GOOD[:2])
    before = src.read_bytes()
    for overwrite in (False, True):
        with pytest.raises(DataError, match="is the input"):
            LocalBatchEngine(rec).run(src, tmp_path / out_name, overwrite=overwrite)
        assert src.read_bytes() == before


def test_meta_says_whether_the_output_is_complete(rec, tmp_path):
    """An output cut short by a crash looked exactly like a finished one: nothing on disk
    told a reader of out.jsonl that requests were missing."""
    import json

    class StopAtThird:
        def __init__(self) -> None:
            self.calls, self.config, self.dataset = 0, rec.config, rec.dataset

        def recommend(self, req):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return rec.recommend(req)

    src = write_requests(tmp_path / "req.jsonl", [*GOOD[:4], "{bad"])
    out = tmp_path / "out.jsonl"
    meta_path = tmp_path / "out.jsonl.meta.json"
    with pytest.raises(KeyboardInterrupt):
        LocalBatchEngine(StopAtThird(), batch_size=1).run(src, out)
    assert json.loads(meta_path.read_text())["complete"] is False
    LocalBatchEngine(rec).run(src, out)
    meta = json.loads(meta_path.read_text())
    assert (meta["complete"], meta["done"], meta["failed"], meta["total"]) == (True, 4, 1, 5)
