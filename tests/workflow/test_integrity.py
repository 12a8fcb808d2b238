"""No stale result survives an interruption and a change (issue 15), end to end through Snakemake.

One small run of the smoke experiment (tests/workflow/smoke.yaml), targeted at one generation job
(mixed / sft / alpacaeval, 8 items, one per batch) in a temporary working directory:

1. generation is interrupted with SIGINT to Snakemake's process group (what Ctrl-C does) after its first
   batch, leaving outputs of the model trained with learning rate A in the resume file;
2. ``train.learning_rate`` is changed and the job rerun: training reruns, and every output must come from
   the new model (equal to a fresh generation from it), none from the resume file of the old one;
3. a change of ``evaluate.max_new_tokens`` reruns only generation; interrupted again, it leaves no stale
   sidecar ``<outputs>.meta.json`` of the previous run (declared as an output, removed with it).

Run: UAL_DATA_MIRROR=../shared/data python -m pytest tests/workflow/test_integrity.py   (about 2 minutes)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TARGET = "results/smoke/seed0/generate/mixed/sft/alpacaeval.json"
MODEL = "results/smoke/seed0/train/mixed/sft"

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def _command(work: Path) -> list[str]:
    experiment = work / "experiments" / "smoke.yaml"
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(work), "--configfile", str(experiment), "--cores", "1", TARGET]


def _env(data_mirror: Path) -> dict[str, str]:
    return {**os.environ, "UAL_DATA_MIRROR": str(data_mirror.resolve()),
            "UAL_MODEL_CACHE": str((REPO / "resources" / "models").resolve())}


def _edit(work: Path, edit) -> None:
    path = work / "experiments" / "smoke.yaml"
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw))


def _run(work: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(_command(work), cwd=work, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _interrupt_after_first_batch(work: Path, env: dict[str, str]) -> list[dict]:
    """Run the target, press Ctrl-C once the resume file holds a finished batch; its items."""
    partial = work / f"{TARGET}.partial.jsonl"
    process = subprocess.Popen(_command(work), cwd=work, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    try:
        while not (partial.is_file() and len(partial.read_text().splitlines()) >= 2):
            assert process.poll() is None, f"snakemake ended (rc {process.returncode}) before generating"
            assert time.monotonic() < deadline, "no generated batch within 900 s"
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not (work / TARGET).exists(), "generation finished before the interrupt; the test needs more items"
    return [json.loads(line) for line in partial.read_text().splitlines()[1:]]


def test_interrupted_generation_then_retraining_keeps_no_output_of_the_old_model(tmp_path, data_mirror):
    work = tmp_path
    (work / "experiments").mkdir()
    (work / "experiments" / "smoke.yaml").write_text((REPO / "tests" / "workflow" / "smoke.yaml").read_text())

    def small(raw):
        raw["evaluate"].update(batch_size=1)
        raw["evaluate"]["sizes"]["alpacaeval"] = 8
        raw["evaluate"]["max_new_tokens"]["alpacaeval"] = 24

    _edit(work, small)
    env = _env(data_mirror)
    old_items = _interrupt_after_first_batch(work, env)
    assert old_items and (work / MODEL / "train_metrics.json").is_file()
    old_weights = (work / MODEL / "model.safetensors").read_bytes()

    _edit(work, lambda raw: raw["train"].update(learning_rate=0.02))
    _run(work, env)
    assert (work / MODEL / "model.safetensors").read_bytes() != old_weights  # retrained
    log = (work / "logs/generate_outputs/smoke/seed0/mixed/sft/alpacaeval.log").read_text()
    assert "discarding" in log and "model_fingerprint" in log
    meta = json.loads((work / f"{TARGET}.meta.json").read_text())
    assert meta["n_items"] == 8 and meta["n_generated_this_run"] == 8
    assert not (work / f"{TARGET}.partial.jsonl").exists()
    # Every output is the new model's: the same as generating from it afresh, outside the workflow.
    fresh = work / "fresh.json"
    subprocess.run(
        [sys.executable, "-m", "ual.generate", "--experiment", "experiments/smoke.yaml", "--model", MODEL,
         "--task", "alpacaeval", "--out", str(fresh), "--generator", "sft"],
        cwd=work, env=env, check=True, capture_output=True, timeout=600,
    )
    outputs = json.loads((work / TARGET).read_text())
    assert [o["output"] for o in outputs] == [o["output"] for o in json.loads(fresh.read_text())]

    # A rerun of generation alone that is interrupted leaves no sidecar of the run before.
    _edit(work, lambda raw: raw["evaluate"]["max_new_tokens"].update(alpacaeval=20))
    _interrupt_after_first_batch(work, env)
    assert not (work / f"{TARGET}.meta.json").exists()
