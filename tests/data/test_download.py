"""GroupLens downloader with a fake opener: nothing here touches the network."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import zipfile

import pytest

from llmrank.config import DATA_DIR_ENV
from llmrank.data import download as dl
from llmrank.errors import DataError, DatasetNotFoundError


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


class FakeOpener:
    """Serves fixed bytes per URL and records what was asked, like urlopen(url, timeout=)."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = pages
        self.calls: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float) -> FakeResponse:
        self.calls.append((url, timeout))
        if url not in self.pages:
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        return FakeResponse(self.pages[url])


ML_FILES = {"ml-latest-small/ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n",
            "ml-latest-small/movies.csv": "movieId,title,genres\n1,Toy Tale (1995),Animation\n"}


def test_download_verifies_sha256_and_unpacks(tmp_path, monkeypatch):
    data = _zip(ML_FILES)
    monkeypatch.setitem(dl.MOVIELENS, "ml-latest-small",
                        dl.Archive("ml-latest-small", "ml-latest-small", hashlib.sha256(data).hexdigest()))
    opener = FakeOpener({dl.BASE_URL + "ml-latest-small.zip": data})
    seen: list[int] = []
    path = dl.download("ml-latest-small", tmp_path, opener=opener, progress=lambda done, total: seen.append(done))
    assert path == tmp_path / "ml-latest-small" and (path / "ratings.csv").is_file()
    assert seen[-1] == len(data) and opener.calls[0][1] == dl.DEFAULT_TIMEOUT
    assert [p.name for p in tmp_path.iterdir()] == ["ml-latest-small"]  # no temp files left
    dl.download("ml-latest-small", tmp_path, opener=FakeOpener({}))  # present: no network needed

    from llmrank.data.loaders.movielens import load_movielens
    assert load_movielens(path).n_items == 1


def test_checksum_mismatch_unpacks_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(dl.MOVIELENS, "ml-100k", dl.Archive("ml-100k", "ml-100k", "0" * 64))
    opener = FakeOpener({dl.BASE_URL + "ml-100k.zip": _zip({"ml-100k/u.data": "1\t1\t5\t1\n"})})
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        dl.download("ml-100k", tmp_path, opener=opener)
    assert not (tmp_path / "ml-100k").exists()


def test_published_md5_for_ml_latest(tmp_path):
    data = _zip({"ml-latest/ratings.csv": "userId,movieId,rating,timestamp\n1,1,4,5\n"})
    md5 = hashlib.md5(data).hexdigest()
    opener = FakeOpener({dl.BASE_URL + "ml-latest.zip": data,
                         dl.BASE_URL + "ml-latest.zip.md5": f"MD5 (ml-latest.zip) = {md5}\n".encode()})
    assert (dl.download("ml-latest", tmp_path, opener=opener) / "ratings.csv").is_file()
    opener.pages[dl.BASE_URL + "ml-latest.zip.md5"] = b"0" * 32
    with pytest.raises(DataError, match="MD5 mismatch"):
        dl.download("ml-latest", tmp_path, opener=opener, force=True)


def test_offline_fails_fast_with_instructions(tmp_path):
    opener = FakeOpener({})
    with pytest.raises(DatasetNotFoundError) as exc:
        dl.download("ml-1m", tmp_path / "d", opener=opener, timeout=2)
    msg = str(exc.value)
    assert "could not download ml-1m" in msg and "offline" in msg
    assert "--data-dir" in msg and DATA_DIR_ENV in msg and str(tmp_path / "d" / "ml-1m") in msg
    assert opener.calls == [(dl.BASE_URL + "ml-1m.zip", 2)]


def test_unsafe_zip_and_unknown_name(tmp_path, monkeypatch):
    data = _zip({"../evil.txt": "x"})
    monkeypatch.setitem(dl.MOVIELENS, "ml-1m", dl.Archive("ml-1m", "ml-1m", hashlib.sha256(data).hexdigest()))
    with pytest.raises(DataError, match="unsafe path"):
        dl.download("ml-1m", tmp_path, opener=FakeOpener({dl.BASE_URL + "ml-1m.zip": data}))
    assert not (tmp_path.parent / "evil.txt").exists()
    with pytest.raises(DataError, match="no download known"):
        dl.download("netflix", tmp_path)


def test_every_archive_has_a_checksum_source():
    for archive in dl.MOVIELENS.values():
        assert archive.sha256 or archive.md5 or archive.name == "ml-latest"
        assert archive.url.startswith("https://files.grouplens.org/datasets/movielens/")
