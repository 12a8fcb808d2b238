"""``UALSFTTrainer`` on two CPU ranks (gloo) under DDP, DeepSpeed ZeRO-2 and ZeRO-3 against one process with
the
same global batch (tests/integration/trl_multirank_worker.py): the same loss and gradient norm, step for step,
while the two ranks carry different numbers of response tokens (so the global token normaliser decides)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("trl_multirank_worker.py")
BACKENDS = ("ddp", "zero2", "zero3")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def multirank(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trl_multirank")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO)}
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
    ]
    commands = {
        "two_ranks": [*launcher, str(WORKER), "--backends", *BACKENDS, "--per-device-batch", "2"],
        "one_process": [sys.executable, str(WORKER), "--backends", "none", "--per-device-batch", "4"],
    }
    for name, command in commands.items():
        done = subprocess.run(
            [*command, "--out", str(tmp / f"{name}.json")],
            cwd=tmp,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, f"{name} failed:\n{done.stdout[-5000:]}"
    return {
        "ranks": [json.loads((tmp / f"two_ranks.rank{r}.json").read_text()) for r in (0, 1)],
        "single": json.loads((tmp / "one_process.rank0.json").read_text()),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_ranks_give_the_loss_and_gradient_norm_of_one_process(multirank, backend):
    single = multirank["single"]["runs"]["none"]
    rank0, rank1 = (ranks["runs"][backend] for ranks in multirank["ranks"])
    assert multirank["ranks"][0]["world_size"] == 2 and len(single) == 3
    assert [s["rank_response_tokens"] for s in rank0] != [s["rank_response_tokens"] for s in rank1]
    for key in ("loss", "grad_norm"):
        assert [s[key] for s in rank0] == pytest.approx([s[key] for s in single], rel=1e-4), key
        assert [s[key] for s in rank1] == [s[key] for s in rank0]
