"""Running the workflow on tests/workflow/smoke.yaml in a temporary working directory (shared by the tests
of this folder: test_smoke.py, test_slurm.py; the session fixture ``smoke_run`` is in conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def new_workdir(path: Path, experiment: Path = REPO / "tests" / "workflow" / "smoke.yaml") -> Path:
    """``path`` with experiments/smoke.yaml in it, ready for ``snakemake(path, ...)``."""
    (path / "experiments").mkdir(parents=True)
    shutil.copy(experiment, path / "experiments" / "smoke.yaml")
    return path


def snakemake(work: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    """The repository's Snakefile on work/experiments/smoke.yaml, run in ``work``."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(work), "--configfile", str(work / "experiments" / "smoke.yaml"), *args]
    # the run changes directory: the model cache needs an absolute path
    cache = os.environ.get("UAL_MODEL_CACHE") or str((REPO / "resources" / "models").resolve())
    env = {**os.environ, "UAL_MODEL_CACHE": cache}
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout, env=env)
