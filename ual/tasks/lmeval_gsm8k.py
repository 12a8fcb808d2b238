"""lm-eval's stock GSM8K scoring (strict-match, flexible-extract) on our generations: the independent check.

``ual.tasks.gsm8k`` scores with MetaMath's rules; this module scores the same completions with what an
lm-eval user would get: lm-eval's own task ``gsm8k`` (``lm_eval/tasks/gsm8k/gsm8k.yaml`` as installed, read by
lm-eval's YAML loader and built as its ``ConfigurableTask``), its two filter pipelines (``filter_list``:
strict-match and flexible-extract) applied by ``apply_filters``, and its metric (``exact_match`` with the
YAML's ``ignore_case`` and ``regexes_to_ignore``) computed by ``process_results``. No regex or rule of it is
copied here. Only two things are not the stock task's: the documents are our items, written as lm-eval's
GSM8K documents ``{question, answer: "#### <gold>"}`` (its target drops everything up to "#### ", so this
target equals the one of the upstream solution), and the completions are ours (the MetaMath prompt, not its
5-shot "Question:/Answer:" prompt, which is never rendered). The one internal touched is the task's list of
request instances (``_instances``), which ``apply_filters`` reads; lm-eval is pinned (0.4.13).

What it shows (asserted in ``tests/unit/test_crosscheck.py``): strict-match reads only "#### N", so
MetaMath-format completions ("The answer is: N") all score 0; flexible-extract takes the last number anywhere
and compares strings, so "18.00", "17.5" and "54/3" are wrong against 18 (MetaMath rounds and evaluates
fractions), a number after the marker is not preferred to a later one, and an answer with no marker counts.

Inputs: completions and integer golds. Outputs: per scorer (``SCORERS``), one {extracted, correct} per
completion. Used by ``ual.tasks.gsm8k`` for the ``crosscheck`` of every GSM8K metrics file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["FILTERS", "SCORERS", "STOCK_TASK", "score_stock_gsm8k", "stock_config"]

STOCK_TASK = "gsm8k"
FILTERS = {"strict-match": "lmeval_strict_match", "flexible-extract": "lmeval_flexible_extract"}
SCORERS = tuple(FILTERS.values())  # result keys, one per filter pipeline of the stock YAML


def stock_config() -> dict[str, Any]:
    """The installed stock task YAML, read by lm-eval's own loader."""
    from lm_eval.tasks._yaml_loader import load_yaml

    config = load_yaml(resources.files("lm_eval.tasks") / STOCK_TASK / f"{STOCK_TASK}.yaml")
    names = [entry["name"] for entry in config.get("filter_list", [])]
    if names != list(FILTERS):
        raise ValueError(f"lm-eval's {STOCK_TASK} task has filters {names}, expected {list(FILTERS)}")
    return config


def _stock_task(docs: list[dict]) -> Any:
    """lm-eval's ``ConfigurableTask`` of the stock config, with ``docs`` as its test split (no few-shot)."""
    import datasets
    from lm_eval.api.task import ConfigurableTask

    config = {k: v for k, v in stock_config().items() if k not in ("dataset_path", "dataset_name")}
    config.update(
        custom_dataset=lambda **unused: {"test": datasets.Dataset.from_list(docs)},
        training_split=None,
        fewshot_split=None,
        num_fewshot=0,
    )
    return ConfigurableTask(config=config)


def score_stock_gsm8k(completions: Sequence[str], golds: Sequence[int]) -> dict[str, list[dict]]:
    """{scorer: [{"extracted": filtered answer, "correct": bool}, ...]} for every completion, in order."""
    from lm_eval.api.instance import Instance

    if len(completions) != len(golds):
        raise ValueError(f"{len(completions)} completions but {len(golds)} gold answers")
    if not completions:
        return {scorer: [] for scorer in SCORERS}
    docs = [{"question": "", "answer": f"#### {gold}"} for gold in golds]
    task = _stock_task(docs)
    instances = []
    for index, (doc, completion) in enumerate(zip(docs, completions, strict=True)):
        instance = Instance("generate_until", doc, ("", {}), 0, (STOCK_TASK, index, 1))
        instance.resps = [completion]
        instances.append(instance)
    task._instances = instances
    task.apply_filters()
    results: dict[str, list[dict]] = {scorer: [] for scorer in SCORERS}
    for instance in instances:
        for name, scorer in FILTERS.items():
            extracted = instance.filtered_resps[name]  # take_first leaves the answer of the one response
            verdict = task.process_results(instance.doc, [extracted])["exact_match"]
            results[scorer].append({"extracted": extracted, "correct": bool(verdict == 1.0)})
    return results
