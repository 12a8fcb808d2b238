"""The data manifest (``ual/data/manifest.json``) and where the mirror folder is.

Every file an experiment reads from a mirror is an entry of the manifest: its path inside the mirror, the
public GitHub repository, commit and path it is a byte-identical copy of, its size, sha256 and licence. The
manifest holds facts, never data; ``python -m ual.data fetch`` rebuilds a mirror from it anywhere.

The mirror folder (``resolve_mirror``, the one place that decides it): ``data.mirror`` of the experiment, else
env ``UAL_DATA_MIRROR``, else the user's cache folder ``$XDG_CACHE_HOME/ual/data`` (``~/.cache/ual/data``),
which ``fetch`` fills on a connected machine.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ual.provenance import file_sha256

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "MANIFEST",
    "MIRROR_ENV",
    "ManifestFile",
    "default_cache_dir",
    "describe_mirror",
    "resolve_mirror",
]

MIRROR_ENV = "UAL_DATA_MIRROR"
BASE_URL_ENV = "UAL_DATA_BASE_URL"  # another raw-file server with GitHub's layout (tests, proxies)
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
MANIFEST_PATH = Path(__file__).with_name("manifest.json")


@dataclass(frozen=True)
class ManifestFile:
    """One mirror file: ``name`` (its path in the mirror) and the upstream file it copies byte for byte."""

    name: str
    repository: str  # owner/repo on GitHub
    commit: str  # 40 hex digits
    path: str  # path inside the repository
    size: int
    sha256: str
    licence: str

    def url(self, base_url: str | None = None) -> str:
        """The raw-file URL at the pinned commit (``base_url``, else env UAL_DATA_BASE_URL, else GitHub's)."""
        base = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/{self.repository}/{self.commit}/{self.path}"

    @property
    def upstream(self) -> str:
        """``owner/repo@commit:path``, for messages and provenance."""
        return f"{self.repository}@{self.commit}:{self.path}"


def _load_manifest(path: Path = MANIFEST_PATH) -> dict[str, ManifestFile]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {name: ManifestFile(name=name, **entry) for name, entry in raw["files"].items()}


MANIFEST: dict[str, ManifestFile] = _load_manifest()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ual/data``, or ``~/.cache/ual/data`` (where ``fetch`` puts the data by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ual" / "data"


def resolve_mirror(mirror: str | Path | None = None) -> Path:
    """The mirror folder: the argument (``data.mirror``), else env UAL_DATA_MIRROR, else the default cache."""
    value = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    return Path(value) if value else default_cache_dir()


def describe_mirror(mirror: str | Path | None = None) -> str:
    """Where ``resolve_mirror`` took the folder from, for messages."""
    if mirror is not None:
        return f"the mirror {mirror} (data.mirror)"
    if os.environ.get(MIRROR_ENV):
        return f"the mirror {os.environ[MIRROR_ENV]} (env {MIRROR_ENV})"
    return f"the data cache {default_cache_dir()} (data.mirror and env {MIRROR_ENV} unset)"
