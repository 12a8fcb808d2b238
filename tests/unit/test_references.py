"""ual.analysis.references: the calibration references of each task type, their draw and their bad input.

Run: python -m pytest tests/unit/test_references.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ual.analysis.references import draw_references, load_references, reference_label
from ual.config import resolved_config
from ual.experiment import load_experiment
from ual.tasks import TASKS

REPO = Path(__file__).resolve().parents[2]


def experiment_with(tmp_path: Path, mirror: Path, **calibration) -> object:
    config = resolved_config(load_experiment(REPO / "experiments" / "tiny.yaml"), with_name=False)
    config["data"]["mirror"] = str(mirror)
    config["analysis"]["calibration"].update(calibration)
    path = tmp_path / "refs.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return load_experiment(path)


def gsm8k_rows(n: int) -> list[dict]:
    return [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(n)]


@pytest.fixture()
def mirror(tmp_path):
    root = tmp_path / "mirror"
    (root / "gsm8k").mkdir(parents=True)
    (root / "gsm8k" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gsm8k_rows(5)))
    outputs = root / "alpaca_eval" / "results" / "gpt4_1106_preview" / "model_outputs.json"
    outputs.parent.mkdir(parents=True)
    outputs.write_text(json.dumps([
        {"instruction": "Name a colour.", "output": "Blue.", "generator": "gpt4_1106_preview"},
        {"instruction": "Say nothing.", "output": "", "generator": "gpt4_1106_preview"},
    ]))
    return root


def test_gsm8k_references_are_the_test_gold_solutions_in_metamath_format(tmp_path, mirror):
    records, origin = load_references(experiment_with(tmp_path, mirror), "gsm8k")
    assert origin == str(mirror / "gsm8k" / "test.jsonl")
    assert records[3]["output"] == "3 + 3 = 6\nThe answer is: 6" and records[3]["instruction"] == "What is 3 + 3?"


def test_alpacaeval_references_are_the_named_generators_outputs(tmp_path, mirror):
    records, origin = load_references(experiment_with(tmp_path, mirror), "alpacaeval")
    assert origin.endswith("alpaca_eval/results/gpt4_1106_preview/model_outputs.json")
    assert [(r["instruction"], r["output"]) for r in records] == [("Name a colour.", "Blue."), ("Say nothing.", "")]
    assert records[0]["dataset"] == "alpaca_eval_references:gpt4_1106_preview" and records[0]["input"] == ""


def test_each_task_labels_its_references(tmp_path, mirror):
    experiment = experiment_with(tmp_path, mirror)
    assert [reference_label(experiment, task) for task in ("alpacaeval", "gsm8k", "math")] == [
        "AlpacaEval references (gpt4_1106_preview)",
        "GSM8K test gold solutions (MetaMath format)",
        f"MATH {experiment.evaluate.math_split} solutions",
    ]


def test_a_missing_reference_file_names_the_file(tmp_path, mirror):
    outputs = mirror / "alpaca_eval" / "results" / "gpt4_1106_preview" / "model_outputs.json"
    outputs.unlink()
    with pytest.raises(ValueError, match=rf"{outputs}"):
        load_references(experiment_with(tmp_path, mirror), "alpacaeval")
    experiment = experiment_with(tmp_path, mirror, alpacaeval_references="no_such_model")
    with pytest.raises(ValueError, match=r"alpaca_eval references of 'no_such_model': the mirror carries only"):
        load_references(experiment, "alpacaeval")


def test_an_empty_reference_file_and_an_unknown_task_are_errors(tmp_path, mirror, monkeypatch):
    (mirror / "gsm8k" / "test.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"gsm8k/test\.jsonl: no records \(the file is empty: 0 bytes\)"):
        load_references(experiment_with(tmp_path, mirror), "gsm8k")
    experiment = experiment_with(tmp_path, mirror)  # validated while math is registered
    monkeypatch.delitem(TASKS, "math")
    with pytest.raises(ValueError, match=r"names task 'math', which is not a registered task \(ual.tasks.TASKS\); "
                                         "known tasks: alpacaeval, gsm8k"):
        load_references(experiment, "math")


def test_fewer_eligible_references_than_asked_is_an_error_naming_file_and_key():
    records = [{"id": f"r{i}"} for i in range(4)]
    with pytest.raises(ValueError, match=r"^/m/test\.jsonl: analysis\.calibration\.sizes\.gsm8k asks for 4 "
                                         r"references, but only 3 of its 4 have a response token within "
                                         r"train\.max_length=128$"):
        draw_references("gsm8k", records, "/m/test.jsonl", [True, True, False, True], 4, seed=0, max_length=128)


def test_the_draw_is_seeded_nested_and_skips_references_without_a_response_token():
    records = [{"id": f"r{i}"} for i in range(20)]
    has_target = [i % 5 != 0 for i in range(20)]  # r0, r5, r10, r15 cut away
    small = draw_references("math", records, "f", has_target, 6, seed=0, max_length=128)
    large = draw_references("math", records, "f", has_target, 10, seed=0, max_length=128)
    assert len(small.records) == 6 and small.n_available == 20 and small.n_eligible == 16
    assert {r["id"] for r in small.records} <= {r["id"] for r in large.records}  # nested, as ual.data.subsample
    assert not {"r0", "r5", "r10", "r15"} & {r["id"] for r in large.records}
    assert [r["id"] for r in small.records] == sorted((r["id"] for r in small.records), key=lambda i: int(i[1:]))
    assert small.ids_sha256 == draw_references("math", records, "f", has_target, 6, 0, 128).ids_sha256
    assert small.ids_sha256 != draw_references("math", records, "f", has_target, 6, 1, 128).ids_sha256
    everything = draw_references("math", records, "f", has_target, None, seed=0, max_length=128)
    assert len(everything.records) == 16


def test_a_size_below_two_is_refused_by_the_config(tmp_path, mirror):
    from ual.config import ConfigError

    with pytest.raises(ConfigError, match="sizes.gsm8k = 1: a sample bootstrap needs at least 2 references"):
        experiment_with(tmp_path, mirror, sizes={"gsm8k": 1})
