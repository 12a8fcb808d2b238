"""Provenance written beside every result: package versions, git SHA, host, time.

Every stage calls ``run_metadata(...)`` and stores it (``run_config.json`` or a ``provenance`` field of a
metric file), so each number can be traced to the code, versions and config that made it. Result files are
written atomically through ``replace_atomically`` (``write_text_atomic``, ``write_json``). ``changed_keys``
names what differs between a recorded run identity and the current one (resume checks). ``sidecar_path`` names
a result's sidecar, ``file_sha256`` hashes a file, ``read_json_list`` reads a JSON list file (model outputs,
reference outputs) with the caller's error type.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "ual", "torch", "transformers", "datasets", "accelerate", "deepspeed", "alpaca-eval", "lm-eval",
    "math-verify", "scikit-learn", "snakemake", "vllm", "trl", "peft",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(root: str | Path | None = None) -> dict[str, Any]:
    """The repository's HEAD SHA and whether the work tree differs from it (None outside a checkout)."""
    cwd = str(root or Path(__file__).resolve().parents[1])
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd, capture_output=True, text=True, check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return {"git_sha": None, "git_dirty": None}
    return {"git_sha": sha, "git_dirty": dirty}


def run_metadata(**extra: Any) -> dict[str, Any]:
    """Versions, git state, host and UTC time, merged with stage-specific ``extra`` fields."""
    import torch

    meta: dict[str, Any] = {
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "versions": package_versions(),
        **git_state(),
    }
    meta.update(extra)
    return meta


def changed_keys(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The keys whose values differ between a recorded identity (None: nothing recorded) and the current one.

    >>> changed_keys({"model": "a", "seed": 0}, {"model": "b", "seed": 0, "dtype": "float32"})
    ['dtype', 'model']
    """
    recorded = recorded or {}
    return sorted(key for key in {*recorded, *current} if recorded.get(key) != current.get(key))


def replace_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Create ``path`` through ``write(temp)`` on a temporary file beside it, then rename it into place, so
    readers see the old file or the whole new one, never a half. The file is flushed to disk first and gets
    the usual permissions (mkstemp's are 0600). The temp file keeps ``path``'s suffix (matplotlib reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(Path(temp))
        with open(temp, "rb") as stream:
            os.fsync(stream.fileno())
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a UTF-8 text result file atomically (see ``replace_atomically``)."""
    replace_atomically(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, payload: Any) -> None:
    """Write a JSON result file (indented, UTF-8, trailing newline) atomically (see ``replace_atomically``)."""
    write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def sidecar_path(path: str | Path, kind: str = "meta") -> Path:
    """The sidecar of a result file: ``<file>.<kind>.json`` (``meta``: what made it; ``provenance``: a
    table's sources). The one place sidecar names are built."""
    path = Path(path)
    return path.with_name(f"{path.name}.{kind}.json")


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks (the one file hasher)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json_list(path: str | Path, what: str, error: type[Exception] = ValueError) -> list:
    """The JSON list in ``path`` (``what`` it holds, e.g. "model outputs"); an unreadable file or another
    JSON value raises ``error`` naming the file."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise error(f"{path}: cannot read {what} ({exc})") from None
    if not isinstance(rows, list):
        raise error(f"{path}: expected a JSON list of {what}, got {type(rows).__name__}")
    return rows
