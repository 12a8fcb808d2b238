"""A task is one unit: a toy task, defined here only and registered by monkeypatching ``ual.tasks.TASKS``, goes
through what an experiment reads (``ual.inputs``), the calibration references (``ual.analysis.references``),
scoring (``python -m ual.evaluate``'s path) and the report's main table, with no other module edited.

Run: python -m pytest tests/unit/test_toy_task.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from ual import inputs
from ual.analysis.references import load_references, reference_label
from ual.config import resolved_config
from ual.experiment import load_experiment
from ual.tasks import TASKS, Task, TaskInput
from ual.tasks.accuracy import accuracy_with_ci

REPO = Path(__file__).resolve().parents[2]


class ToyTask(Task):
    """Exact match of the whole completion with the gold number of a GSM8K test record; reads a second file."""

    def evaluation_inputs(self, experiment: Any) -> list[TaskInput]:
        answers = Path(experiment.data.mirror) / "toy_answers.json"
        return [*super().evaluation_inputs(experiment), TaskInput("answers", reference=str(answers))]

    def prompt_template(self, model_template: str) -> str:
        return "alpaca"

    def render_prompt(self, record: dict, model_template: str, tokenizer: Any = None) -> str:
        return record["instruction"]

    def score(self, outputs: dict, records: list[dict], experiment: Any, out: Path, outputs_path: Path) -> dict:
        correct = [outputs[record["id"]].strip() == record["answer"] for record in records]
        return {"metric": "accuracy", **accuracy_with_ci(correct)}


TOY = ToyTask(name="toy", version=1, dataset="gsm8k", split="test", stop_strings=("\n",), match_key="id",
              label="Toy acc. (%)", percent_scale=100.0, low_entropy=True)


@pytest.fixture()
def toy_file(tmp_path, monkeypatch) -> Path:
    """tiny.yaml evaluating only the toy task, on a mirror of five GSM8K test records (the file)."""
    monkeypatch.setitem(TASKS, "toy", TOY)
    mirror = tmp_path / "mirror"
    (mirror / "gsm8k").mkdir(parents=True)
    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(5)]
    (mirror / "gsm8k" / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (mirror / "toy_answers.json").write_text("[]")
    config = resolved_config(load_experiment(REPO / "experiments" / "tiny.yaml"), with_name=False)
    config["data"]["mirror"] = str(mirror)
    config["evaluate"].update(tasks=["toy"], sizes={"toy": 4}, max_new_tokens={"toy": 8})
    config["analysis"]["calibration"]["sizes"] = {"toy": 3}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture()
def toy_experiment(toy_file):
    return load_experiment(toy_file)


def test_the_toy_task_says_what_it_reads(toy_experiment):
    mirror = Path(toy_experiment.data.mirror)
    roles = [(item.role, item.group, item.label) for item in inputs.experiment_inputs(toy_experiment)]
    assert roles[2:] == [
        ("evaluate.toy", "toy", "gsm8k/test"),
        ("evaluate.toy.answers", "answers", f"alpaca_eval references {mirror / 'toy_answers.json'}"),
        ("analysis.calibration.toy", "calibration", "gsm8k/test"),
    ]
    assert inputs.data_groups(toy_experiment) == ["train", "toy", "answers", "calibration"]
    assert inputs.task_data_groups(toy_experiment, "toy") == ["toy", "answers"]
    test_file = next(r for r in inputs.data_sources(toy_experiment) if r.get("file") == "gsm8k/test.jsonl")
    assert test_file["used_for"] == ["evaluate.toy", "analysis.calibration.toy"]


def test_the_toy_task_brings_its_calibration_references(toy_experiment):
    records, origin = load_references(toy_experiment, "toy")
    assert origin == str(Path(toy_experiment.data.mirror) / "gsm8k" / "test.jsonl") and len(records) == 5
    assert reference_label(toy_experiment, "toy") == "toy references (gsm8k/test)"


def _score(experiment_file: Path, tmp_path: Path, right: int) -> dict:
    """Outputs of the toy task's items, ``right`` of them correct, scored by ``python -m ual.evaluate``."""
    from ual.evaluate import main

    records = TOY.records(load_experiment(experiment_file))
    rows = [{"instruction": r["instruction"], "id": r["id"], "generator": "m",
             "output": r["answer"] if index < right else "no idea"} for index, r in enumerate(records)]
    outputs, out = tmp_path / f"outputs{right}.json", tmp_path / f"metrics{right}.json"
    outputs.write_text(json.dumps(rows))
    main(["--experiment", str(experiment_file), "--task", "toy", "--outputs", str(outputs), "--out", str(out)])
    return json.loads(out.read_text())


def test_the_toy_task_is_scored_by_the_evaluate_stage(toy_file, tmp_path):
    metrics = _score(toy_file, tmp_path, right=3)
    assert (metrics["task"], metrics["task_version"], metrics["metric"]) == ("toy", 1, "accuracy")
    assert metrics["accuracy"] == 0.75 and metrics["n"] == 4 and metrics["n_correct"] == 3
    assert 0.0 <= metrics["ci_low"] <= 0.75 <= metrics["ci_high"] <= 1.0


def test_the_toy_task_has_its_column_in_the_main_table(toy_file, tmp_path):
    from ual.report.tables import main_table

    rows = []
    for variant, right in (("sft", 2), ("ual", 3)):
        metrics = _score(toy_file, tmp_path, right)
        rows.append({"scenario": "mixed", "variant": variant, "seed": 0, "task": "toy",
                     "value": TOY.percent_scale * metrics["accuracy"],
                     "error": TOY.percent_scale * (metrics["ci_high"] - metrics["ci_low"]) / 2,
                     "error_kind": "ci95/2", "n": metrics["n"]})
    reported = pd.DataFrame(columns=["scenario", "task_group", "value"])
    table = main_table(pd.DataFrame(rows), reported, ["mixed"], ["toy"])
    cells = table.set_index("row")[TOY.label]
    assert cells["SFT"].startswith("50.00 ± ") and cells["UAL"].startswith("75.00 ± ")
    assert cells["UAL - SFT (points)"] == "25.00"
    assert table.set_index("row")["low-entropy avg."]["UAL - SFT (relative %)"] == "50.00"  # low_entropy
