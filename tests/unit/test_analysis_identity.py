"""python -m ual.analysis: the run's identity comes from the command line (no model is loaded here).

Run: python -m pytest tests/unit/test_analysis_identity.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ual.analysis.stage import BASE, _models_and_identity, _parse_args
from ual.experiment import load_experiment

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "experiments" / "tiny.yaml"


def _identity(*argv: str):
    args = _parse_args(["--experiment", str(TINY), "--out", "out", *argv])
    return _models_and_identity(args, load_experiment(TINY))


def test_a_scenario_run_records_experiment_scenario_and_seed():
    models, identity = _identity("--scenario", "mixed", "--seed", "2", "--models", "sft=A", "ual=B")
    assert models == {"sft": "A", "ual": "B"}
    assert identity.as_record() == {"experiment": "tiny", "scenario": "mixed", "variant": None, "seed": 2}


def test_the_base_model_run_records_the_experiment_only():
    models, identity = _identity("--base-model")
    assert list(models) == [BASE]
    assert identity.as_record() == {"experiment": "tiny", "scenario": None, "variant": None, "seed": None}


@pytest.mark.parametrize(("argv", "message"), [
    (("--scenario", "mixed", "--models", "sft=A"), "trained models need --scenario and --seed"),
    (("--seed", "0", "--models", "sft=A"), "trained models need --scenario and --seed"),
    (("--base-model", "--seed", "0"), r"--base-model scores the base model alone"),
    (("--base-model", "--scenario", "low"), r"--base-model scores the base model alone"),
    (("--scenario", "low", "--seed", "0", "--models", "base=A"), "the model name 'base' is reserved"),
    ((), "give --models NAME=SOURCE ... or --base-model"),
])
def test_bad_combinations_are_errors(argv, message):
    with pytest.raises(ValueError, match=message):
        _identity(*argv)
