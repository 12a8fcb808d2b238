"""Provenance written beside every result: package versions, git SHA, host, time.

Every stage calls ``run_metadata(...)`` and stores it (``run_config.json`` or a ``provenance`` field of a
metric file), so each number can be traced to the code, versions and config that made it.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "ual", "torch", "transformers", "datasets", "accelerate", "deepspeed", "alpaca-eval", "lm-eval",
    "math-verify", "scikit-learn", "snakemake", "vllm",
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


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a result file so that readers see the old file or the whole new one, never a half (temp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)
