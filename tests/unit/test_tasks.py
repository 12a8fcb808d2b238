"""The task registry ual.tasks.TASKS: each task as one unit (the direction of the imports: test_layers.py)."""

from __future__ import annotations

import pytest

from ual.tasks import TASKS, get_task
from ual.tasks.alpacaeval import ALPACA_STOP_STRINGS
from ual.tasks.metamath import STOP_STRINGS, build_prompt


def test_registry_holds_the_papers_three_tasks_with_their_protocols():
    assert sorted(TASKS) == ["alpacaeval", "gsm8k", "math"]
    assert all(name == task.name for name, task in TASKS.items())
    # alpacaeval 2: both-orders judging, position bias, unparsed verdicts reported, named reference sets
    assert {name: task.version for name, task in TASKS.items()} == {"alpacaeval": 2, "gsm8k": 2, "math": 2}
    assert TASKS["gsm8k"].stop_strings == TASKS["math"].stop_strings == STOP_STRINGS
    assert TASKS["alpacaeval"].stop_strings == ALPACA_STOP_STRINGS
    assert ALPACA_STOP_STRINGS == ("### Instruction:", "### Input:", "### Response:")
    assert [(t.dataset, t.split, t.match_key) for t in TASKS.values()] == [
        ("alpaca_eval", "eval", "instruction"),
        ("gsm8k", "test", "id"),
        ("math", None, "id"),  # the split is evaluate.math_split
    ]


def test_metamath_tasks_prompt_every_model_alike_and_alpacaeval_follows_the_model():
    record = {"id": "q", "instruction": "What is 2+3?", "input": ""}
    for name in ("gsm8k", "math"):
        assert TASKS[name].render_prompt(record, "chat") == build_prompt("What is 2+3?")
        assert TASKS[name].prompt_template("chat") == "alpaca"
        assert TASKS[name].describe_prompt("chat") == 'MetaMath (alpaca + "Let\'s think step by step.")'
    assert TASKS["alpacaeval"].render_prompt(record, "alpaca").endswith("What is 2+3?\n\n### Response:")
    assert TASKS["alpacaeval"].describe_prompt("alpaca") == "alpaca"


def test_unknown_task_names_the_known_ones():
    with pytest.raises(KeyError, match="unknown task 'mmlu'; known tasks: alpacaeval, gsm8k, math"):
        get_task("mmlu")
