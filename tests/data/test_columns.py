"""The two fast readers of clean delimited files: exact columns when the file is clean, None
(decline, the careful reader takes over) at the first thing that is off."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.data import columns
from llmrank.data.lines import LoadReport

TYPES = {2: "float64", 3: "int64"}
CLEAN = [["1", "2"], ["10", "20"], [5.0, 3.5], [100, 200]]


def _read(tmp_path, reader: str, data: bytes, sep: str, *, header: bool = False, encoding: str = "utf-8"):
    path = tmp_path / "ratings.dat"
    path.write_bytes(data)
    read = columns._read_arrow if reader == "arrow" else columns._read_python
    cols = read(path, sep, 4, header, encoding, TYPES)
    if cols is None:
        return None
    return [c.tolist() if isinstance(c, np.ndarray) else [str(v) for v in c] for c in cols]


@pytest.mark.parametrize("reader", ["python", "arrow"])
@pytest.mark.parametrize("data,sep,header", [
    (b"1\t10\t5\t100\n2\t20\t3.5\t200\n", "\t", False),
    (b"1::10::5::100\n2::20::3.5::200\n", "::", False),  # MovieLens 1M/10M
    (b"u,i,r,t\n1,10,5,100\n2,20,3.5,200\n", ",", True),
    (b"1\t10\t5\t100\r\n2\t20\t3.5\t200\r\n", "\t", False),
    (b"1\t10\t5\t100\n2\t20\t3.5\t200", "\t", False),  # no final newline
])
def test_clean_files_give_typed_columns(tmp_path, reader, data, sep, header):
    assert _read(tmp_path, reader, data, sep, header=header) == CLEAN


@pytest.mark.parametrize("reader", ["python", "arrow"])
@pytest.mark.parametrize("data,sep,encoding", [
    (b"1\t10\t5\t100\n2\t20\t3\n", "\t", "utf-8"),  # a missing field
    (b"1\t10\tx\t100\n", "\t", "utf-8"),  # not a number
    (b"\xef\xbb\xbf1\t10\t5\t100\n", "\t", "utf-8"),  # BOM
    (b" 1\t10\t5\t100\n", "\t", "utf-8"),  # padded id
    (b"\t10\t5\t100\n", "\t", "utf-8"),  # empty id
    (b"1:x:10::5::100\n", "::", "utf-8"),  # '::' with something between the colons
    (b"1\t1\xff0\t5\t100\n", "\t", "utf-8"),  # not UTF-8
    (b"1\t10\t5\t100\n", "\t", "no-such-codec"),
])
def test_anything_off_declines(tmp_path, reader, data, sep, encoding):
    assert _read(tmp_path, reader, data, sep, encoding=encoding) is None


def test_header_only_declines_in_both(tmp_path):
    for reader in ("python", "arrow"):
        assert _read(tmp_path, reader, b"u,i,r,t\n", ",", header=True) is None


def test_reader_specific_declines(tmp_path):
    # the python reader leaves blank lines to the careful reader; arrow skips them as it does
    data = b"1\t10\t5\t100\n\n2\t20\t3.5\t200\n"
    assert _read(tmp_path, "python", data, "\t") is None
    assert _read(tmp_path, "arrow", data, "\t") == CLEAN
    # arrow splits on one character (or a doubled one), the python reader on any separator
    assert _read(tmp_path, "arrow", b"1<>10<>5<>100\n", "<>") is None
    assert _read(tmp_path, "python", b"1<>10<>5<>100\n", "<>") == [["1"], ["10"], [5.0], [100]]
    assert _read(tmp_path, "python", b"1\x1f::10::5::100\n", "::") is None  # its own placeholder


def test_read_clean_table_records_the_file_only_when_it_reads_it(tmp_path, monkeypatch):
    monkeypatch.setattr(columns, "worth_fast_path", lambda path: False)
    good, bad = tmp_path / "good.dat", tmp_path / "bad.dat"
    good.write_bytes(b"1\t10\t5\t100\n2\t20\t3.5\t200\n")
    bad.write_bytes(b"1\t10\tx\t100\n")
    report = LoadReport()
    kw = {"sep": "\t", "n_fields": 4, "header": False, "encoding": "utf-8", "types": TYPES, "report": report}
    assert columns.read_clean_table(bad, **kw) is None
    assert report.files == [] and report.lines_read == 0
    assert columns.read_clean_table(good, **kw) is not None
    assert report.files == [str(good)] and report.lines_read == 2
