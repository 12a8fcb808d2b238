"""GSM8K under the MetaMath protocol: prompt, extraction edge cases, gold solutions, CI, lm-eval hooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ual.tasks import TASKS, gsm8k, metamath
from ual.tasks.accuracy import accuracy_with_ci

LMEVAL_DIR = Path(__file__).resolve().parents[2] / "ual/evaluate/lmeval_tasks"


def test_prompt_is_metamaths_exact_text():
    # docs/evaluation.md: the eval_gsm8k.py prompt, character for character.
    expected = (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nJanet has 3 apples.\n\n### Response: Let's think step by step."
    )
    assert metamath.build_prompt("Janet has 3 apples.") == expected
    record = {"id": "x", "instruction": "Janet has 3 apples.", "input": ""}
    assert TASKS["gsm8k"].render_prompt(record, "chat") == TASKS["math"].render_prompt(record, "alpaca") == expected


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("3 + 4 = 7.\nThe answer is: 7", 7),
        ("The answer is: 18", 18),
        ("The answer is: $18.", 18),  # currency sign and full stop
        ("The answer is: 1,000", 1000),  # one thousands group
        ("The answer is: 1,450,000", 1450000),  # two groups: read whole (documented deviation)
        ("The answer is: -3", -3),  # negative
        ("The answer is: +5", 5),
        ("The answer is: 3/4", 1),  # fraction evaluated (0.75), then rounded
        ("The answer is: 7/2", 4),  # 3.5 rounds half to even -> 4
        ("The answer is: 5/2", 2),  # 2.5 rounds half to even -> 2 (Python round, as MetaMath)
        ("The answer is: 6/0", 6),  # a/0 reads as a
        ("The answer is: 2.5", 2),
        ("The answer is: 0.75", 1),
        ("The answer is: .5", 0),
        ("The answer is: 12 apples", 12),  # units after the number
        ("The answer is: 45 minutes and 30 seconds", 45),  # the first number after the marker
        ("The answer is: 3.\nThe answer is: 4", 4),  # several markers: the last wins
        ("The answer is: x = 12", 12),
        ("The answer is:18", None),  # the marker needs its colon AND space
        ("The answer is 18", None),  # missing marker
        ("#### 18", None),  # the GSM8K reference format is not the MetaMath marker
        ("", None),
        ("The answer is: unknown", None),  # marker without a number
        ("The answer is: 12,34", 1234),  # MetaMath's regex reads the comma as part of the number
    ],
)
def test_extract_answer_edge_cases(completion, expected):
    assert gsm8k.extract_answer(completion) == expected


@pytest.mark.parametrize(
    ("gold", "value"), [("18", 18), ("-3", -3), ("1450000", 1450000), ("1,450,000", 1450000)]
)
def test_parse_gold(gold, value):
    assert gsm8k.parse_gold(gold) == value


@pytest.mark.parametrize("gold", [None, "", "eighteen", "3/4"])
def test_parse_gold_rejects_non_numbers_naming_the_item(gold):
    with pytest.raises(ValueError, match="abc123"):
        gsm8k.parse_gold(gold, "abc123")


def test_missing_answer_is_wrong():
    assert not gsm8k.is_correct(None, 0)
    assert gsm8k.is_correct(0, 0)


def _corrupt(solution: str) -> str:
    head, answer = solution.rsplit(metamath.ANSWER_MARKER, 1)
    return f"{head}{metamath.ANSWER_MARKER}{int(answer.replace(',', '')) + 1}"


def test_gold_solutions_of_the_mirror_test_set_score_100_percent_and_corrupted_ones_0(data_mirror):
    from ual.data import load_records

    records = load_records("gsm8k", "test", data_mirror)
    assert len(records) == 1319
    gold_outputs = {r["id"]: r["output"] for r in records}
    assert all(r["output"].rstrip().splitlines()[-1].startswith("The answer is: ") for r in records)
    items = gsm8k.score_items(gold_outputs, records)
    assert accuracy_with_ci([i["correct"] for i in items])["accuracy"] == 1.0
    # the cross-check scorers on the same 1,319 reference solutions: the solutions end with the answer
    # (commas removed), so MetaMath verbatim and flexible-extract agree; strict-match finds no "#### "
    agree = {s: sum(i["crosscheck"][s]["correct"] for i in items) for s in items[0]["crosscheck"]}
    assert agree == {"metamath": 1319, "lmeval_strict_match": 0, "lmeval_flexible_extract": 1319}
    corrupted = gsm8k.score_items({r["id"]: _corrupt(r["output"]) for r in records}, records)
    assert not any(i["correct"] or any(c["correct"] for c in i["crosscheck"].values()) for i in corrupted)
    assert all(i["has_marker"] for i in corrupted)


def test_metamath_reference_file_golds_agree_with_ual_data(data_mirror):
    # MetaMath's own GSM8K_test.jsonl: gold after "#### " equals ual.data's answer for every item, in order.
    import json

    from ual.data import load_records

    rows = [
        json.loads(line) for line in (data_mirror / "metamathqa/GSM8K_test.jsonl").read_text().splitlines()
    ]
    records = load_records("gsm8k", "test", data_mirror)
    golds = [int(row["response"].split("#### ")[-1].replace(",", "")) for row in rows]
    assert golds == [gsm8k.parse_gold(r["answer"]) for r in records]


def test_accuracy_ci_is_deterministic_and_brackets_the_mean():
    correct = [True] * 30 + [False] * 70
    first, second = accuracy_with_ci(correct), accuracy_with_ci(correct)
    assert first == second
    assert first["accuracy"] == 0.3 and first["n"] == 100 and first["n_correct"] == 30
    assert first["ci_low"] < 0.3 < first["ci_high"]
    # Normal approximation: 0.3 +- 1.96 * sqrt(0.3 * 0.7 / 100) = [0.210, 0.390]; the bootstrap is close.
    assert first["ci_low"] == pytest.approx(0.21, abs=0.02)
    assert first["ci_high"] == pytest.approx(0.39, abs=0.02)
    with pytest.raises(ValueError, match="non-empty"):
        accuracy_with_ci([])


def test_lmeval_generation_task_takes_prompt_and_stops_from_the_task_and_scoring_from_lmevals_gsm8k():
    pytest.importorskip("lm_eval")
    from lm_eval.tasks._yaml_loader import load_yaml

    from ual.tasks.lmeval_gsm8k import stock_config

    task = load_yaml(LMEVAL_DIR / "ual_gsm8k_generation.yaml")  # lm-eval's own loader resolves !function
    until = task["generation_kwargs"]["until"]
    assert isinstance(until, list) and tuple(until) == metamath.STOP_STRINGS == TASKS["gsm8k"].stop_strings
    assert task["generation_kwargs"]["do_sample"] is False
    assert [task[k].__name__ for k in ("custom_dataset", "doc_to_text", "doc_to_target")] == [
        "load_dataset", "doc_to_text", "doc_to_target"]
    assert "process_results" not in task  # scored by lm-eval's metric, not by ual's extraction
    stock = stock_config()
    assert task["filter_list"] == stock["filter_list"] and task["metric_list"] == stock["metric_list"]
    assert [f["name"] for f in task["filter_list"]] == ["strict-match", "flexible-extract"]
    record = {"id": "x", "instruction": "Janet has 3 apples.", "input": "", "answer": "18"}
    assert task["doc_to_text"](record) == metamath.build_prompt("Janet has 3 apples.")
    assert task["doc_to_target"](record) == "#### 18"
