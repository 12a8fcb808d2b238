"""The elicitation cache: an append-only JSONL of score records, safe to share between concurrent runs.

File: ``<elicit.cache_dir>/<elicitor>_<prompt version>_<scorer>.jsonl`` (``ual.elicit.core.cache_path``),
one validated ``ScoreRecord`` per line (``ual.elicit.records``), keyed by ``key``.

- Kill-safe: one line is appended, flushed and fsync'ed per finished sample; a line cut by a kill (the
  last one, without its newline) is dropped with a warning and the file repaired on load. A corrupt or
  invalid line anywhere else (``{"key": K}`` alone, ``score: 42``) is an error naming the file and line.
- Shared: every append holds ``<file>.lock`` (filelock) and first reads what other processes appended, so
  a key already written is not written again (no duplicate lines). Before a sample is requested, its key
  is *claimed* with a non-blocking lock on one of ``CLAIM_STRIPES`` files ``<file>.claims/<n>.lock``
  (chosen by the key): a concurrent run that finds the claim taken defers that sample and later waits for
  the claim, then reads the cache, so two runs never pay twice for one sample. Claims are OS file locks:
  they vanish with a killed process, so no stale claim blocks a rerun.
- Failed requests (``error`` set) are never cached; unparseable replies are (a greedy rerun repeats them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from ual.elicit.records import parse_record

__all__ = ["CLAIM_STRIPES", "ScoreCache"]

logger = logging.getLogger(__name__)
CLAIM_STRIPES = 64  # claim files per cache: few files, and collisions only defer a sample


class ScoreCache:
    """Append-only JSONL of score records keyed by ``key``; the last record of a key wins."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        self._offset = 0  # bytes of the file already read
        self._lines = 0  # lines already read (for error messages)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the write lock: a thread mutex (this run's threads) and a file lock (other runs)
        self._mutex, self._file_lock = threading.Lock(), FileLock(str(self.path) + ".lock")
        self._claims_dir = Path(str(self.path) + ".claims")
        # thread_local=False: the threads of one run share each claim (reentrant), other runs are locked out
        self._claims: dict[int, FileLock] = {}
        self._claims_guard = threading.Lock()
        with self._locked():
            self._read_new(repair=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex, self._file_lock:
            yield

    def _read_new(self, repair: bool = False) -> None:
        """Read the lines appended since the last read (the caller holds the write lock)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        if repair and end < len(data):  # a line cut by a kill: drop it so the next append starts afresh
            logger.warning("%s: dropping a truncated last line (%d bytes)", self.path, len(data) - end)
            with self.path.open("r+b") as handle:
                handle.truncate(self._offset + end)
        try:
            text = data[:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{self.path}: not UTF-8 text ({exc.reason})") from None
        for line in text.splitlines():
            self._lines += 1
            if line.strip():
                record = parse_record(line, self.path, self._lines)
                self.records[record["key"]] = record
        self._offset += end

    def get(self, key: str) -> dict | None:
        """The cached record of ``key``, or None (also for a failed request, which is retried)."""
        record = self.records.get(key)
        return None if record is None or record.get("error") else record

    def refresh(self) -> None:
        """Read what concurrent runs have appended since the last read."""
        with self._locked():
            self._read_new()

    def append(self, record: dict) -> dict:
        """Append ``record`` unless another run cached its key meanwhile; returns the cached record."""
        line = json.dumps(record, ensure_ascii=False) + "\n"
        parse_record(line, self.path, self._lines + 1)  # never write what the reader would refuse
        with self._locked():
            self._read_new()
            if self.get(record["key"]) is not None:
                return self.records[record["key"]]
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._read_new()  # our own line: advances the offset past it
        return self.records[record["key"]]

    @staticmethod
    def stripe(key: str) -> int:
        """The claim file of ``key`` (claims are taken in ascending stripe order)."""
        return int(key[:8], 16) % CLAIM_STRIPES

    def _claim_lock(self, key: str) -> FileLock:
        stripe = self.stripe(key)
        with self._claims_guard:
            if stripe not in self._claims:
                self._claims_dir.mkdir(parents=True, exist_ok=True)
                path = self._claims_dir / f"{stripe:02d}.lock"
                self._claims[stripe] = FileLock(str(path), thread_local=False)
            return self._claims[stripe]

    @contextlib.contextmanager
    def claim(self, key: str, wait: bool) -> Iterator[bool]:
        """Hold the claim of ``key`` (True), or yield False when another run holds it and not ``wait``."""
        lock = self._claim_lock(key)
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
