"""lm-eval hooks of the ``ual_gsm8k_generation`` task: ual's GSM8K items, prompt and stop strings, scored by
lm-eval's stock gsm8k filters and metric.

What the task checks is generation: lm-eval's own generate loop, on ual's prompt (MetaMath's) with ual's stop
strings, must write the same completions as ``python -m ual.generate`` (``tests/integration/
test_lmeval_generation.py`` asserts it, item by item). Its scores are not ual's: they are lm-eval's stock gsm8k
task's (strict-match and flexible-extract, ``exact_match`` with its options), taken from the installed
``lm_eval/tasks/gsm8k/gsm8k.yaml`` through ``ual.tasks.lmeval_gsm8k.stock_config`` (``FILTER_LIST``,
``METRIC_LIST`` below), so they equal the ``lmeval_*`` columns of ``table_crosscheck`` on the same
generations; ual's own number is ``python -m ual.evaluate --task gsm8k``.

Loaded by lm-eval through ``!function gsm8k_generation.<name>`` from ``ual_gsm8k_generation.yaml`` (run with
``--include_path ual/evaluate/lmeval_tasks``); lm-eval's ``!function`` returns any attribute of this module,
so the YAML's lists are the ones below. Items, prompt and stop list come from the task
``ual.tasks.TASKS["gsm8k"]``; nothing is copied.
"""

from __future__ import annotations

from typing import Any

from ual.tasks import TASKS
from ual.tasks.lmeval_gsm8k import stock_config

TASK = TASKS["gsm8k"]
# a list, as lm-eval's handle_stop_sequences wants (each request gets a deep copy of generation_kwargs)
STOP_STRINGS: list[str] = list(TASK.stop_strings)
_STOCK = stock_config()
FILTER_LIST: list[dict] = _STOCK["filter_list"]  # strict-match, flexible-extract
METRIC_LIST: list[dict] = _STOCK["metric_list"]  # exact_match, ignore_case, regexes_to_ignore


def load_dataset(mirror: str | None = None, **unused: Any) -> dict[str, Any]:
    """{"test": datasets.Dataset} of the normalised GSM8K test records (lm-eval ``custom_dataset``)."""
    import datasets

    from ual.data import load_records

    return {"test": datasets.Dataset.from_list(load_records(TASK.dataset, TASK.split, mirror))}


def doc_to_text(doc: dict) -> str:
    """The task's prompt (MetaMath: Alpaca template + " Let's think step by step.")."""
    return TASK.render_prompt(doc, "alpaca")


def doc_to_target(doc: dict) -> str:
    """The stock task's target form, "#### <gold>" (its metric strips everything up to "#### ")."""
    return f"#### {doc['answer']}"
