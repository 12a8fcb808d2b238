"""A fresh clone plans the whole workflow: its default target (results/<exp>/published.json) is something a clone
does not have, although it has the committed tables and figures.

Run: python -m pytest tests/workflow/test_fresh_clone.py   (clones the checkout's committed HEAD)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.workflow

STAGES = ["fetch_data", "elicit_scores", "map_epsilon", "train_model", "generate_outputs", "score_task",
          "analyse_base_model", "analyse_models", "make_tables", "make_figures", "publish"]


def test_snakemake_on_a_fresh_clone_plans_every_stage_and_publish(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    assert (clone / "paper_tables" / "tiny" / "table_main.md").exists()  # the committed deliverables are there
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules"], cwd=clone,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
    for stage in STAGES:
        assert int(planned.get(stage, 0)) >= 1, f"{stage} not planned on a fresh clone:\n{result.stdout}"
    assert planned["publish"] == "1" and planned["all"] == "1"
