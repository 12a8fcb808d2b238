"""Rebuild the data mirror from the manifest: each file from its upstream repository at the pinned commit.

For every manifest entry asked for: a file already in the mirror folder with the manifest's size and sha256 is
kept (nothing downloaded); otherwise it is downloaded from its raw-file URL
(``https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>``; env ``UAL_DATA_BASE_URL`` or
``--base-url`` names another server with that layout) into ``<file>.part``, verified, and renamed into place,
so a reader never sees half a file. An interrupted download keeps its ``.part`` and resumes from there (HTTP
Range; a server that ignores the range sends the whole file again). A download whose size or sha256 differs
from the manifest is refused and removed, naming the file; a file already there that differs is refused and
kept. Files that cannot be reached (no network, HTTP
errors) are listed in one message with their URLs and destinations: the air-gapped route.

Inputs: manifest entries (``ual.data.manifest.MANIFEST``), a destination folder. Outputs: the files under it.
Commands: ``python -m ual.fetch --experiment FILE [--group G] [--record FILE]`` (the files one experiment
reads; the workflow's rule ``fetch_data``) and ``python -m ual.data fetch [--dest DIR]`` (every manifest file).
"""

from __future__ import annotations

import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tqdm.auto import tqdm

from ual.data.load import DataError
from ual.data.manifest import MIRROR_ENV, ManifestFile
from ual.provenance import file_sha256

__all__ = ["FetchError", "FetchResult", "fetch_files", "is_verified"]

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16
LOCK_NAME = ".ual-fetch.lock"
TIMEOUT_S = 60.0


class FetchError(DataError):
    """Files that could not be fetched or were refused; the message names each file and what to do."""


@dataclass
class FetchResult:
    """What a fetch did: files found verified in place, and files downloaded (and verified)."""

    verified: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)


class _Retry(Exception):
    """A transfer that broke after the connection was made (worth resuming at once)."""


class _RangeRefused(_Retry):
    """HTTP 416 for a resumed range: the ``.part`` is dropped and the file fetched from the start."""


class _Unreachable(Exception):
    """No usable response from the server (no network, HTTP error): the file goes into the air-gapped list."""


class _Refused(Exception):
    """A response that is not the manifest's file (size or sha256 differ); nothing of it is kept."""


def is_verified(path: Path, entry: ManifestFile) -> bool:
    """The file exists with the manifest's size and sha256."""
    return path.is_file() and path.stat().st_size == entry.size and file_sha256(path) == entry.sha256


def _open(url: str, offset: int) -> http.client.HTTPResponse:
    headers = {"User-Agent": "ual-data-fetch/1"} | ({"Range": f"bytes={offset}-"} if offset else {})
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            raise _RangeRefused(f"HTTP 416 for bytes {offset}-") from None
        if exc.code == 429 or exc.code >= 500:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
        raise _Unreachable(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:  # DNS failure, refused, unreachable, timeout
        raise _Unreachable(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None


def _transfer(entry: ManifestFile, url: str, part: Path, progress: bool) -> None:
    """Bring ``part`` to the manifest's size: resume it with a Range request, or start it over."""
    have = part.stat().st_size if part.is_file() else 0
    if have >= entry.size:
        return  # complete (or too long): the verification decides
    try:
        response = _open(url, have)
    except _RangeRefused:
        part.unlink()
        raise
    with response:
        content_range = response.headers.get("Content-Range") or ""
        resumed = bool(have) and response.status == 206 and content_range.startswith(f"bytes {have}-")
        if have and not resumed:
            logger.info("%s: the server sent the whole file, not bytes %d-; starting over", entry.name, have)
            have = 0
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=entry.size, initial=have, unit="B", unit_scale=True, desc=entry.name, disable=not progress
        ) as bar:
            while have <= entry.size:
                try:
                    block = response.read(CHUNK_BYTES)
                except (http.client.HTTPException, OSError) as exc:
                    broke = f"the connection broke after {have} of {entry.size} bytes ({exc!r})"
                    raise _Retry(broke) from None
                if not block:
                    break
                out.write(block)
                have += len(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
    if have < entry.size:
        raise _Retry(f"the connection closed after {have} of {entry.size} bytes")


def _download(entry: ManifestFile, target: Path, base_url: str | None, attempts: int, progress: bool) -> None:
    url, part = entry.url(base_url), target.with_name(target.name + ".part")
    try:
        for attempt in Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception_type(_Retry),
            reraise=True,
        ):
            with attempt:
                _transfer(entry, url, part, progress)
    except _Retry as exc:
        kept = part.stat().st_size if part.is_file() else 0
        resume = f"; {kept} bytes kept in {part}, a rerun resumes there" if kept else ""
        raise _Unreachable(f"{exc}{resume}") from None
    size, sha256 = part.stat().st_size, file_sha256(part)
    if size != entry.size or sha256 != entry.sha256:
        part.unlink()
        raise _Refused(
            f"{entry.name}: refused the file downloaded from {url}: {size} bytes with sha256 {sha256}, but "
            f"the manifest pins {entry.size} bytes with sha256 {entry.sha256}; removed it, nothing was "
            "written"
        )
    os.replace(part, target)


def _air_gapped_message(dest: Path, unreachable: list[tuple[ManifestFile, str]], base_url: str | None) -> str:
    lines = [f"{len(unreachable)} data file(s) could not be downloaded into {dest}:"]
    for entry, reason in unreachable:
        lines.append(f"  {dest / entry.name}  ({entry.size} bytes, sha256 {entry.sha256})")
        lines.append(f"      from {entry.url(base_url)}  [{reason}]")
    lines.append(
        "Without internet (the air-gapped route): download these files on a connected machine from the URLs "
        "above (or run `python -m ual.data fetch --dest <folder>` there), then put each at the path shown, "
        f"or keep them under one folder at the same relative paths (e.g. <folder>/{unreachable[0][0].name}) "
        f"and set {MIRROR_ENV}=<folder> (or data.mirror in the experiment); `python -m ual.data fetch` then "
        "only checks their size and sha256."
    )
    return "\n".join(lines)


def _refuse_present(target: Path, entry: ManifestFile) -> str:
    size, sha256 = target.stat().st_size, file_sha256(target)
    return (
        f"{entry.name}: {target} is not the manifest's file ({size} bytes with sha256 {sha256}; pinned: "
        f"{entry.size} bytes with sha256 {entry.sha256}, {entry.upstream}); refused and left as it is. Delete "
        "it and fetch again to get the pinned file"
    )


def _fetch_one(
    entry: ManifestFile, target: Path, base_url: str | None, attempts: int, progress: bool
) -> str | None:
    """Download one absent entry; None when it is now verified, else the problem (raises _Unreachable)."""
    if target.is_file():  # another fetch into the same folder finished it while this one waited for the lock
        return None if is_verified(target, entry) else _refuse_present(target, entry)
    try:
        _download(entry, target, base_url, attempts, progress)
    except _Refused as exc:
        return str(exc)
    except OSError as exc:
        return f"{entry.name}: cannot write {target} ({type(exc).__name__}: {exc})"
    logger.info("%s: downloaded and verified (%d bytes, sha256 %s)", target, entry.size, entry.sha256)
    return None


def fetch_files(
    entries: Iterable[ManifestFile],
    dest: str | Path,
    base_url: str | None = None,
    attempts: int = 3,
    progress: bool = True,
) -> FetchResult:
    """Make every entry a verified file under ``dest``; see the module docstring.

    A file already under ``dest`` that is not the manifest's is refused and left untouched (it may be
    someone's own copy): the workflow never computes from bytes other than the pinned ones. Downloads into one
    folder are serialised by a lock file ``dest/.ual-fetch.lock`` (parallel jobs, two experiments sharing the cache).

    Raises:
        FetchError: one message listing the refused files (a download whose size or sha256 differ is removed;
            a file that was there is kept), the files that could not be written, and the files that could not
            be reached with their URLs and destinations.
    """
    dest, result = Path(dest), FetchResult()
    problems: list[str] = []
    unreachable: list[tuple[ManifestFile, str]] = []
    absent = []
    for entry in entries:
        target = dest / entry.name
        if not target.is_file():
            absent.append(entry)
        elif is_verified(target, entry):
            result.verified.append(entry.name)
        else:
            problems.append(_refuse_present(target, entry))
    if absent:
        try:
            dest.mkdir(parents=True, exist_ok=True)
            lock = FileLock(dest / LOCK_NAME)
            with lock:
                for entry in absent:
                    try:
                        problem = _fetch_one(entry, dest / entry.name, base_url, attempts, progress)
                    except _Unreachable as exc:
                        unreachable.append((entry, str(exc)))
                        continue
                    if problem:
                        problems.append(problem)
                    else:
                        result.downloaded.append(entry.name)
        except OSError as exc:  # the folder cannot be created or locked (read-only mirror)
            problems.append(f"cannot write into {dest} ({type(exc).__name__}: {exc})")
    if unreachable:
        problems.append(_air_gapped_message(dest, unreachable, base_url))
    if problems:
        raise FetchError("\n".join(problems))
    return result
