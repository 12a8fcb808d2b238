"""The import layers of ual hold (import-linter's contracts in pyproject.toml: layers from the stage entry
points down to the schema and the leaves, and no import cycle anywhere); loading an experiment stays light.

Run: python -m pytest tests/unit/test_layers.py   (or lint-imports from the repository root)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    """This checkout's ``ual`` first (import-linter finds the package through the import system)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    if not lint_imports.is_file():
        pytest.skip(f"no lint-imports beside {sys.executable} (pip install import-linter==2.16)")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_loading_an_experiment_loads_no_heavy_library():
    # Every stage command and the workflow's DAG construction load an experiment; the judges (alpaca_eval) and
    # the libraries the tasks score with are imported only where they are used.
    heavy = ("ual.judges", "alpaca_eval", "math_verify", "lm_eval", "datasets", "torch")
    code = f"import sys, ual.experiment; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
