"""ual.train under DeepSpeed on CPU (one process, gloo, fp32, torch AdamW), through the real CLI.

The same small run (SmolLM2 cut to 2 layers, 6 mirror samples of the mixed scenario, per-sample epsilon,
2 optimiser steps of 2 x 2 micro-batches, the second step a short one) trains three ways: without
DeepSpeed (in-process), under ZeRO-2 and under ZeRO-3 (two subprocesses, started together), all on the lean
loss path (SmolLM2's LM head is tied to its embedding; under ZeRO-3 it is partitioned and gathered for the
loss). Several ranks: tests/integration/test_multirank.py. The first CPU
DeepSpeed run on a machine JIT-builds a comm op (about 45 s, cached in ~/.cache/torch_extensions).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ual.experiment import load_experiment
from ual.train import METRICS_FILE, main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread, as in the subprocesses: faster than two spinning threads on a shared 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _experiment_file(tmp: Path, mirror: Path, deepspeed: str | None) -> Path:
    raw = yaml.safe_load((REPO / "experiments/tiny.yaml").read_text())
    raw["model"]["num_hidden_layers"] = 2
    raw["data"].update(
        mirror=str(mirror), high={**raw["data"]["high"], "size": 3}, low={**raw["data"]["low"], "size": 3}
    )
    raw["train"].update(
        max_length=128,
        max_steps=2,
        per_device_batch_size=2,
        gradient_accumulation_steps=2,
        learning_rate=1e-4,
        lr_scheduler="constant",
        warmup_ratio=0.0,
        loss_path="lean",
        deepspeed=deepspeed and str(REPO / deepspeed),
    )
    path = tmp / f"ds_{Path(deepspeed).stem if deepspeed else 'none'}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def ds_runs(tmp_path_factory, data_mirror):
    from ual.data import build_scenario

    tmp = tmp_path_factory.mktemp("deepspeed")
    files = {
        name: _experiment_file(tmp, data_mirror, config)
        for name, config in (
            ("none", None),
            ("zero2", "experiments/deepspeed/zero2_cpu.json"),
            ("zero3", "experiments/deepspeed/zero3_cpu.json"),
        )
    }
    records = build_scenario(load_experiment(files["none"]).data, "mixed")
    eps = tmp / "epsilon.jsonl"
    eps.write_text(
        "".join(
            json.dumps(
                {"id": r["id"], "dataset": r["dataset"], "uncertainty": 0.0, "epsilon": 0.05 * (i % 4)}
            )
            + "\n"
            for i, r in enumerate(records)
        )
    )

    def args(name):
        return [
            "--experiment",
            str(files[name]),
            "--scenario",
            "mixed",
            "--variant",
            "ual",
            "--seed",
            "0",
            "--epsilon",
            str(eps),
            "--out",
            str(tmp / name),
        ]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "ual.train", *args(name)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("zero2", "zero3")
    }
    main(args("none"))  # meanwhile, the same run without DeepSpeed in this process
    logs = {}
    for name, proc in procs.items():
        logs[name] = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, f"{name} failed:\n{logs[name][-4000:]}"
    metrics = {name: json.loads((tmp / name / METRICS_FILE).read_text()) for name in files}
    return {"dir": tmp, "metrics": metrics, "logs": logs}


def _losses(metrics):
    return [step["loss"] for step in metrics["steps"]]


def test_zero2_gives_the_same_losses_as_no_deepspeed(ds_runs):
    none, zero2 = ds_runs["metrics"]["none"], ds_runs["metrics"]["zero2"]
    assert len(_losses(none)) == 2 and none["deepspeed"] is None
    assert zero2["deepspeed"].endswith("zero2_cpu.json") and zero2["loss_path"] == "lean"
    assert zero2["deepspeed_config"]["zero_optimization"]["stage"] == 2
    assert _losses(zero2) == pytest.approx(_losses(none), rel=1e-4)


def test_zero3_trains_on_the_lean_path_alike(ds_runs):
    """The lean loss under ZeRO-3 gathers the partitioned (tied) LM head: same losses as without DeepSpeed."""
    zero3 = ds_runs["metrics"]["zero3"]
    assert zero3["loss_path"] == "lean" and zero3["deepspeed_config"]["zero_optimization"]["stage"] == 3
    assert "using the reference path" not in ds_runs["logs"]["zero3"]
    assert _losses(zero3) == pytest.approx(_losses(ds_runs["metrics"]["none"]), rel=1e-4)


def test_zero3_saves_a_full_checkpoint_that_reloads(ds_runs, tiny_smollm2):
    """The ZeRO-3 save holds the trained weights: each tensor moved from the base model as the run without
    DeepSpeed did (Adam amplifies rounding on near-zero gradients, so compare mean moves, not elements)."""
    from ual.models import load_model

    zero3 = ds_runs["metrics"]["zero3"]
    base = tiny_smollm2[0].state_dict()
    expected = sum(p.numel() for p in tiny_smollm2[0].parameters())
    assert zero3["checkpoint"]["parameters"] == expected
    reloaded, _ = load_model(str(ds_runs["dir"] / "zero3"))
    plain, _ = load_model(str(ds_runs["dir"] / "none"))
    assert sum(p.numel() for p in reloaded.parameters()) == expected
    plain_state = plain.state_dict()
    for name, weight in reloaded.state_dict().items():
        moved = (plain_state[name] - base[name]).abs().mean()
        assert weight.abs().sum() > 0 and moved > 0, name  # not the empty ZeRO-3 save; trained
        assert (weight - plain_state[name]).abs().mean() < 1e-3 * moved, name
