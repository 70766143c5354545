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
