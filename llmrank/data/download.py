"""Download the public MovieLens archives from GroupLens, verify them, and unpack them into
the data directory as ``<data_dir>/<name>/``.

Checksums: SHA-256 where one is pinned (from the sizes and digests tensorflow-datasets
records for the same URLs), else the MD5 that GroupLens publishes next to each zip
(pinned here, or fetched from ``<url>.md5`` for ``ml-latest``, which GroupLens updates).
Offline, the first request fails within ``timeout`` seconds and the error says how to point
llmrank at a copy unpacked by hand. Tests pass their own ``opener``; nothing here needs the
network to be tested."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from llmrank.config import DATA_DIR_ENV
from llmrank.errors import DataError, DatasetNotFoundError

log = logging.getLogger(__name__)

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
DEFAULT_TIMEOUT = 10.0
CHUNK = 1 << 20

Opener = Callable[..., IO[bytes]]  # urllib.request.urlopen(url, timeout=...) and look-alikes
Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


@dataclass(frozen=True)
class Archive:
    """One downloadable dataset. ``folder`` is the top folder inside the zip."""

    name: str
    folder: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    @property
    def url(self) -> str:
        return f"{BASE_URL}{self.name}.zip"


MOVIELENS: dict[str, Archive] = {a.name: a for a in (
    Archive("ml-100k", "ml-100k", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            "0e33842e24a9c977be4e0107933c0723", 4924029),
    Archive("ml-1m", "ml-1m", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            "c4d9eecfca2ab87c1945afe126590906", 5917549),
    Archive("ml-10m", "ml-10M100K", None, "ce571fd55effeba0271552578f2648bd"),
    Archive("ml-20m", "ml-20m", "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            "cd245b17a1ae2cc31bb14903e1204af3", 198702078),
    Archive("ml-25m", "ml-25m", "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            "6b51fb2759a8657d3bfcbfc42b592ada", 261978986),
    Archive("ml-latest-small", "ml-latest-small",
            "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", None, 978202),
    Archive("ml-latest", "ml-latest"),  # updated by GroupLens: checked against its published .md5
)}


def how_to_point_at_files(name: str, data_dir: Path) -> str:
    return (f"Download {BASE_URL}{name}.zip on a machine with internet access and unpack it so that "
            f"{data_dir / name}/ exists, or point llmrank at a folder holding {name}/ with --data-dir DIR "
            f"or {DATA_DIR_ENV}=DIR, or give the unpacked folder's path as the dataset.")


def download(
    name: str, data_dir: str | Path, *, force: bool = False, timeout: float = DEFAULT_TIMEOUT,
    opener: Opener | None = None, progress: Progress | None = None,
) -> Path:
    """Fetch, verify and unpack ``name`` into ``data_dir/name``; returns that folder. An
    existing folder is kept unless ``force``. Raises DatasetNotFoundError when the archive
    cannot be fetched and DataError when it fails its checksum."""
    if name not in MOVIELENS:
        raise DataError(f"no download known for {name!r}; downloadable: {', '.join(MOVIELENS)}")
    archive = MOVIELENS[name]
    data_dir = Path(data_dir).expanduser()
    target = data_dir / name
    if target.is_dir() and any(target.iterdir()) and not force:
        log.info("%s already present at %s", name, target)
        return target
    open_url = opener or urllib.request.urlopen
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=data_dir) as tmp:
        zip_path = Path(tmp) / f"{name}.zip"
        sha256, md5 = _fetch(archive.url, zip_path, open_url, timeout, progress, name, data_dir)
        _verify(archive, sha256, md5, open_url, timeout)
        unpacked = _unpack(zip_path, Path(tmp) / "unpacked", archive)
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)
    log.info("downloaded %s to %s", name, target)
    return target


def _fetch(url: str, dest: Path, open_url: Opener, timeout: float, progress: Progress | None,
           name: str, data_dir: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    try:
        with open_url(url, timeout=timeout) as resp, dest.open("wb") as out:
            total = _length(resp)
            done = 0
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                sha.update(chunk)
                md5.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetNotFoundError(f"could not download {name} from {url} ({reason}); this machine may be "
                                   f"offline. {how_to_point_at_files(name, data_dir)}") from exc
    return sha.hexdigest(), md5.hexdigest()


def _length(resp: Any) -> int | None:
    headers = getattr(resp, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    return int(value) if value and str(value).isdigit() else None


def _verify(archive: Archive, sha256: str, md5: str, open_url: Opener, timeout: float) -> None:
    if archive.sha256 is not None:
        expected, got, kind = archive.sha256, sha256, "SHA-256"
    else:
        expected = archive.md5 or _published_md5(archive, open_url, timeout)
        got, kind = md5, "MD5"
    if got != expected:
        raise DataError(f"{archive.url}: {kind} mismatch (expected {expected}, got {got}); the download is "
                        "corrupt or the file changed upstream; nothing was unpacked")
    log.info("%s: %s verified", archive.name, kind)


def _published_md5(archive: Archive, open_url: Opener, timeout: float) -> str:
    url = archive.url + ".md5"
    try:
        with open_url(url, timeout=timeout) as resp:
            text = resp.read(4096).decode("ascii", errors="replace")
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        raise DataError(f"cannot fetch the published checksum {url} ({exc}); refusing an unverified archive") from exc
    for token in text.replace("=", " ").split():
        if len(token) == 32 and all(c in "0123456789abcdefABCDEF" for c in token):
            return token.lower()
    raise DataError(f"{url} holds no MD5 digest")


def _unpack(zip_path: Path, dest: Path, archive: Archive) -> Path:
    """Extract safely (no absolute paths or '..') and return the dataset's top folder."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.namelist():
                parts = Path(member).parts
                if member.startswith(("/", "\\")) or ".." in parts:
                    raise DataError(f"{archive.url}: unsafe path in archive: {member!r}")
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive.url}: not a valid zip archive: {exc}") from exc
    top = dest / archive.folder
    if top.is_dir():
        return top
    folders = [p for p in dest.iterdir() if p.is_dir()]
    if len(folders) == 1:
        return folders[0]
    return dest
