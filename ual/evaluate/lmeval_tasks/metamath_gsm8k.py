"""lm-eval hooks of the ``ual_gsm8k_metamath`` task: ual's items, prompt, stop strings and MetaMath extraction.

Loaded by lm-eval through ``!function metamath_gsm8k.<name>`` from ``ual_gsm8k_metamath.yaml`` (run with
``--include_path ual/evaluate/lmeval_tasks``); lm-eval's ``!function`` returns any attribute of this module,
so the YAML's stop list is ``STOP_STRINGS`` below, the task's stop strings as a list. Every rule comes from the task
``ual.tasks.TASKS["gsm8k"]`` (``ual.tasks.gsm8k``, ``ual.tasks.metamath``), so lm-eval's ``exact_match`` must
equal ``python -m ual.evaluate --task gsm8k`` on the same items and generations.

Changelog: v1 - initial. v2 - the stop list comes from the task (was a copy in the YAML); same values.
"""

from __future__ import annotations

from typing import Any

from ual.tasks import TASKS, gsm8k

TASK = TASKS["gsm8k"]
# a list, as lm-eval's handle_stop_sequences wants (each request gets a deep copy of generation_kwargs)
STOP_STRINGS: list[str] = list(TASK.stop_strings)


def load_dataset(mirror: str | None = None, **unused: Any) -> dict[str, Any]:
    """{"test": datasets.Dataset} of the normalised GSM8K test records (lm-eval ``custom_dataset``)."""
    import datasets

    from ual.data import load_records

    return {"test": datasets.Dataset.from_list(load_records(TASK.dataset, TASK.split, mirror))}


def doc_to_text(doc: dict) -> str:
    """The task's prompt (MetaMath: Alpaca template + " Let's think step by step.")."""
    return TASK.render_prompt(doc, "alpaca")


def process_results(doc: dict, results: list[str]) -> dict[str, int]:
    """1 when the MetaMath answer of the generation equals the gold integer, else 0."""
    extracted = gsm8k.extract_answer(results[0])
    return {"exact_match": int(gsm8k.is_correct(extracted, gsm8k.parse_gold(doc["answer"], doc["id"])))}
