"""GSM8K with the MetaMath evaluation protocol: prompt, answer extraction, numeric comparison, accuracy.

Protocol (meta-math/MetaMath ``eval_gsm8k.py`` @ fe667b14f9a4; docs/evaluation.md):
- prompt, stop strings and answer marker: MetaMath's, from ``ual.tasks.metamath``;
- answer: the text after the LAST "The answer is: "; in it, the first number matching
  ``[-+]?\\d*[.,/]?\\d+``; commas removed, a fraction a/b evaluated (a/0 reads as a), the value ROUNDED to an
  integer with Python's ``round`` (half to even, as in MetaMath); no marker or no number: wrong;
- gold: the final number of the reference solution (``record["answer"]`` from ``ual.data``: the ``#### X``
  value with thousands commas removed), compared as an integer.

Deviation from MetaMath (documented, version 1): a number with two or more thousands groups ("1,450,000") is
read whole; MetaMath's regex stops after the first group and reads 1450, which marks a correct answer wrong
(the GSM8K test set has such golds, e.g. 1450000). Numbers with one group ("1,000") read the same either way.

Cross-check (``crosscheck`` in the metrics, one entry per item): the same completions scored three more ways,
so that the protocol's effect on the number is visible (``table_crosscheck``): ``metamath``, MetaMath's rules
verbatim (without the deviation above), and lm-eval's stock gsm8k scorers ``lmeval_strict_match`` and
``lmeval_flexible_extract`` (``ual.tasks.lmeval_gsm8k``: lm-eval's own task, filters and metric).

Inputs: model outputs (alpaca_eval model_outputs format with ``id``) + the gold records of ``ual.data``.
Outputs: per-item records {id, question, output, extracted, gold, correct, has_marker, crosscheck: {scorer:
{extracted, correct}}} and accuracy with a bootstrap 95 % interval (``ual.tasks.accuracy``), the same for
each cross-check scorer under ``crosscheck``. The task object is ``TASK`` (``ual.tasks.TASKS["gsm8k"]``);
run through ``python -m ual.evaluate --task gsm8k``.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from typing import Any

from ual.tasks.accuracy import accuracy_with_ci
from ual.tasks.metamath import ANSWER_MARKER, STOP_STRINGS, MetaMathTask

logger = logging.getLogger(__name__)

__all__ = [
    "TASK",
    "TASK_VERSION",
    "GSM8KTask",
    "METAMATH_VERBATIM",
    "crosscheck_items",
    "extract_answer",
    "is_correct",
    "parse_gold",
    "score_items",
]

TASK_VERSION = 2

# MetaMath's pattern, preceded by one alternative for numbers with >= 2 thousands groups (see docstring).
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3}){2,}(?:\.\d+)?|\d*[.,/]?\d+)")
_METAMATH_NUMBER = re.compile(r"[-+]?\d*[.,/]?\d+")  # eval_gsm8k.py's, verbatim (the cross-check only)
METAMATH_VERBATIM = "metamath"  # the cross-check scorer name of MetaMath's rules without the deviation
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")


def _to_int(number: str) -> int | None:
    """A matched number string -> the rounded integer MetaMath compares (None when not a finite number)."""
    number = number.replace(",", "")
    if "/" in number:
        numerator, denominator = number.split("/", 1)
        if not (_PLAIN_NUMBER.fullmatch(numerator) and _PLAIN_NUMBER.fullmatch(denominator)):
            return None
        if float(denominator) == 0:
            return round(float(numerator))
        return round(float(Fraction(numerator) / Fraction(denominator)))
    value = float(number)
    if value in (float("inf"), float("-inf")):
        return None
    return round(value)


def extract_answer(completion: str, *, verbatim: bool = False) -> int | None:
    """The integer answer of a completion under the MetaMath rules; None when there is none. ``verbatim``:
    MetaMath's number pattern unchanged ("1,450,000" reads 1450; the cross-check scorer ``metamath``).

    >>> extract_answer("3 + 4 = 7 eggs.\\nThe answer is: 7")
    7
    >>> extract_answer("The answer is: 5. Oops. The answer is: $1,200.50")
    1200
    >>> extract_answer("It is 7.") is None
    True
    >>> extract_answer("The answer is: 1,450,000"), extract_answer("The answer is: 1,450,000", verbatim=True)
    (1450000, 1450)
    """
    if ANSWER_MARKER not in completion:
        return None
    tail = completion.rsplit(ANSWER_MARKER, 1)[1].strip()
    match = (_METAMATH_NUMBER if verbatim else _NUMBER).search(tail)
    if match is None:
        return None
    return _to_int(match.group())


def parse_gold(answer: str | None, item_id: str = "?") -> int:
    """The gold integer of a GSM8K record (``record["answer"]``, e.g. "18" or "-3" or "1,450,000")."""
    if answer is None or not _PLAIN_NUMBER.fullmatch(answer.replace(",", "").strip()):
        raise ValueError(f"GSM8K record {item_id}: gold answer {answer!r} is not a number")
    return round(float(answer.replace(",", "")))


def is_correct(extracted: int | None, gold: int) -> bool:
    """MetaMath's comparison: a missing answer is wrong; otherwise integer equality."""
    return extracted is not None and extracted == gold


def crosscheck_items(completions: list[str], golds: list[int]) -> list[dict[str, dict]]:
    """Per completion, {scorer: {extracted, correct}} for MetaMath's rules verbatim and lm-eval's two stock
    gsm8k scorers (``ual.tasks.lmeval_gsm8k``)."""
    from ual.tasks.lmeval_gsm8k import score_stock_gsm8k

    stock = score_stock_gsm8k(completions, golds)
    rows = []
    for index, (completion, gold) in enumerate(zip(completions, golds, strict=True)):
        verbatim = extract_answer(completion, verbatim=True)
        row = {METAMATH_VERBATIM: {"extracted": verbatim, "correct": is_correct(verbatim, gold)}}
        rows.append(row | {scorer: results[index] for scorer, results in stock.items()})
    return rows


def score_items(outputs: dict[str, str], records: list[dict]) -> list[dict]:
    """Per-item records for every gold record (``outputs`` maps record id -> completion)."""
    completions = [outputs[record["id"]] for record in records]
    golds = [parse_gold(record["answer"], record["id"]) for record in records]
    items = []
    for record, completion, gold, crosscheck in zip(
        records, completions, golds, crosscheck_items(completions, golds), strict=True
    ):
        extracted = extract_answer(completion)
        items.append(
            {
                "id": record["id"],
                "question": record["instruction"],
                "output": completion,
                "extracted": extracted,
                "gold": gold,
                "correct": is_correct(extracted, gold),
                "has_marker": ANSWER_MARKER in completion,
                "crosscheck": crosscheck,
            }
        )
    return items


class GSM8KTask(MetaMathTask):
    """GSM8K test set, MetaMath prompt and stop strings, scored by ``score_items``."""

    protocol = "MetaMath eval_gsm8k (docs/evaluation.md), thousands-group deviation (gsm8k.py)"

    def per_item(self, outputs: dict[str, str], records: list[dict]) -> list[dict]:
        return score_items(outputs, records)

    def reference_label(self, experiment: Any) -> str:
        return "GSM8K test gold solutions (MetaMath format)"

    def more_metrics(self, items: list[dict]) -> dict[str, Any]:
        scorers = items[0]["crosscheck"] if items else {}
        return {
            "crosscheck": {
                scorer: accuracy_with_ci([item["crosscheck"][scorer]["correct"] for item in items])
                for scorer in scorers
            }
        }


TASK = GSM8KTask(
    name="gsm8k",
    version=TASK_VERSION,
    dataset="gsm8k",
    split="test",
    stop_strings=STOP_STRINGS,
    match_key="id",
    label="GSM8K acc. (%)",
    low_entropy=True,
)
