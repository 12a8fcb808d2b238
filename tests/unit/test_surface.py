"""The library surface ``from ual import ...``: lazy (``import ual`` imports neither torch nor TRL), each name
is
its module's object, and without TRL ``ual.UALSFTTrainer`` raises an ImportError naming the extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_import_ual_is_light():
    done = run(
        "import sys, ual; print(sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))"
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_names_are_their_modules_objects():
    import ual.elicit.dataset
    import ual.losses
    import ual.epsilon

    assert ual.label_smoothed_nll_lean is ual.losses.label_smoothed_nll_lean
    assert (
        ual.map_epsilon is ual.epsilon.map_epsilon
        and ual.score_to_epsilon is ual.epsilon.score_to_epsilon
    )
    assert ual.elicit_dataset is ual.elicit.dataset.elicit_dataset
    assert set(ual.__all__) <= set(dir(ual))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ual.nope  # noqa: B018


def test_the_trainer_without_trl_names_the_extra():
    done = run("import sys; sys.modules['trl'] = None; import ual; ual.UALSFTTrainer")
    assert done.returncode != 0
    assert (
        'ImportError: ual.UALSFTTrainer needs TRL: install the trl extra, pip install -e ".[trl]"'
        in done.stderr
    )
