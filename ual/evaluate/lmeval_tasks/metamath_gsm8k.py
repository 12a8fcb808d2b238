"""lm-eval hooks of the ``ual_gsm8k_metamath`` task: ual's items, prompt and MetaMath extraction.

Loaded by lm-eval through ``!function metamath_gsm8k.<name>`` from ``ual_gsm8k_metamath.yaml`` (run with
``--include_path ual/evaluate/lmeval_tasks``). Every rule comes from ``ual.evaluate.gsm8k``, so lm-eval's
``exact_match`` must equal ``python -m ual.evaluate --task gsm8k`` on the same items and generations.

Changelog: v1 - initial.
"""

from __future__ import annotations

from typing import Any

from ual.evaluate import gsm8k


def load_dataset(mirror: str | None = None, **unused: Any) -> dict[str, Any]:
    """{"test": datasets.Dataset} of the normalised GSM8K test records (lm-eval ``custom_dataset``)."""
    import datasets

    from ual.data import load_records

    return {"test": datasets.Dataset.from_list(load_records("gsm8k", "test", mirror))}


def doc_to_text(doc: dict) -> str:
    """MetaMath's prompt (Alpaca template + " Let's think step by step.")."""
    return gsm8k.build_prompt(doc["instruction"])


def process_results(doc: dict, results: list[str]) -> dict[str, int]:
    """1 when the MetaMath answer of the generation equals the gold integer, else 0."""
    extracted = gsm8k.extract_answer(results[0])
    return {"exact_match": int(gsm8k.is_correct(extracted, gsm8k.parse_gold(doc["answer"], doc["id"])))}
