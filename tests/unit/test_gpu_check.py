"""benchmarks/gpu_check.py refuses to run without what it needs, naming it; its CPU smoke path runs through.

The full check needs a GPU (README, "The loss": the GPU check); here only its refusal and one tiny part.
Run: python -m pytest tests/unit/test_gpu_check.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks/gpu_check.py"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script would run the whole check")
def test_without_cuda_it_exits_naming_what_is_missing(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and not out.exists()
    assert "no CUDA device" in proc.stderr and "torch.cuda.is_available() = False" in proc.stderr
    assert "--cpu-smoke" in proc.stderr


def test_a_missing_carried_package_is_named(monkeypatch):
    module = _gpu_check()
    monkeypatch.setattr(module, "CARRIED", (*module.CARRIED, "ual_no_such_package"))
    problems = module.missing_requirements(cpu_smoke=True)
    assert problems == [
        "missing Python packages: ual_no_such_package; carry them with bash benchmarks/gpu_carry.sh "
        "(wheels in gpu_carry/wheels, unpacked by this script)"
    ]


@pytest.mark.slow
def test_cpu_smoke_generation_part_writes_the_json(tmp_path, smollm2_path):
    out = tmp_path / "smoke.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-smoke", "--parts", "generation", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    generation = report["generation"]
    assert report["cpu_smoke"] and report["device"] == "cpu" and set(report["seconds"]) == {"generation"}
    assert generation["batched"]["prompts"] == 4 and generation["single"]["prompts"] == 2
    assert generation["batched"]["tokens"] == 4 * 8 and generation["identical_texts"]  # fp32: no ties flip
