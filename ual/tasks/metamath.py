"""MetaMath's evaluation protocol, shared by GSM8K and MATH: prompt, answer marker, stop strings.

Source: meta-math/MetaMath ``eval_gsm8k.py`` / ``eval_math.py`` @ fe667b14f9a4 (docs/evaluation.md, "GSM8K"):
- prompt: the Alpaca template (``ual.prompts.render_alpaca``) around the question, followed by
  " Let's think step by step." (``build_prompt``), for every model (base or chat); it is Alpaca-template
  text, so it is tokenised as ``alpaca`` prompts are (the tokenizer's own specials, BOS if it has one);
- decoding: greedy, ending at ``STOP_STRINGS`` (MetaMath's ``SamplingParams(stop=...)``, the same list for
  both tasks);
- answer: the text after the LAST ``ANSWER_MARKER`` ("The answer is: "); each task reads its answer there.

``MetaMathTask`` is the ``ual.tasks.Task`` base of both tasks; the lm-eval task
(``ual/evaluate/lmeval_tasks``) takes its prompt and stop list from here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ual.prompts import render_alpaca
from ual.tasks.accuracy import accuracy_with_ci, items_path, write_items
from ual.tasks.base import Task

__all__ = [
    "ANSWER_MARKER",
    "COT_TRIGGER",
    "PROMPT_DESCRIPTION",
    "STOP_STRINGS",
    "MetaMathTask",
    "build_prompt",
]

ANSWER_MARKER = "The answer is: "
STOP_STRINGS: tuple[str, ...] = (
    "Question:",
    "Question",
    "USER:",
    "USER",
    "ASSISTANT:",
    "ASSISTANT",
    "Instruction:",
    "Instruction",
    "Response:",
    "Response",
)
COT_TRIGGER = " Let's think step by step."
PROMPT_DESCRIPTION = 'MetaMath (alpaca + "Let\'s think step by step.")'


def build_prompt(question: str) -> str:
    """The MetaMath evaluation prompt: Alpaca template + " Let's think step by step."

    >>> build_prompt("What is 2+3?").endswith("### Response: Let's think step by step.")
    True
    """
    return render_alpaca(question) + COT_TRIGGER


class MetaMathTask(Task):
    """A task evaluated with MetaMath's prompt for every model, scored as accuracy over per-item records.

    Subclasses give ``protocol`` and ``per_item`` (records with ``correct`` and ``has_marker``), and may add
    metrics (``more_metrics``) and a description of the item set (``item_set``).
    """

    protocol: ClassVar[str]

    def prompt_template(self, model_template: str) -> str:
        return "alpaca"

    def render_prompt(self, record: dict, model_template: str, tokenizer: Any = None) -> str:
        return build_prompt(record["instruction"])

    def describe_prompt(self, model_template: str) -> str:
        return PROMPT_DESCRIPTION

    def per_item(self, outputs: dict[str, str], records: list[dict]) -> list[dict]:
        """Per-item records (``correct``, ``has_marker``, ...) of every gold record, in record order."""
        raise NotImplementedError

    def more_metrics(self, items: list[dict]) -> dict[str, Any]:
        """Metrics beside the accuracy (none by default)."""
        return {}

    def item_set(self, experiment: Any) -> dict[str, Any]:
        """What the items are, beyond the task (e.g. the split chosen by the experiment; none by default)."""
        return {}

    def score(
        self, outputs: dict[str, str], records: list[dict], experiment: Any, out: Path, outputs_path: Path
    ) -> dict:
        """Score, write the per-item records beside ``out`` (``<stem>.items.jsonl``), return the metrics."""
        items = self.per_item(outputs, records)
        write_items(items_path(out), items)
        return {
            "metric": "accuracy",
            **accuracy_with_ci([item["correct"] for item in items]),
            **self.more_metrics(items),
            "n_missing_marker": sum(not item["has_marker"] for item in items),
            **self.item_set(experiment),
            "protocol": self.protocol,
            "items_file": str(items_path(out)),
        }
