"""The task interface: one benchmark as one unit, as an lm-eval ``Task`` is.

A ``Task`` gives everything a stage needs to know about a benchmark: its items for an experiment
(``records``: dataset and split, ``evaluate.sizes[name]`` drawn by ``data.seed``), the prompt text of an item
and the template whose token rules apply to it (``render_prompt``, ``prompt_template``), the stop strings of
generation, how outputs are matched to items (``match_key``), the scoring (``score``: outputs -> metrics and
per-item records written beside the metrics file) and a ``version`` bumped whenever outputs change.

Inputs and outputs of ``score``: ``outputs`` maps record id -> completion for exactly the task's records;
``out`` is the metrics file ``python -m ual.evaluate`` writes (the task writes its per-item records beside it)
and the returned dict goes into that file. Tasks never import ``ual.evaluate`` (the CLI imports them) and
need nothing of ``ual.config`` at import time (``ual.experiment`` checks task names against ``ual.tasks``).

Changelog: v1 - initial (split out of ``ual.evaluate.TASKS``, ``ual.generate.render_prompt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ual.config import Experiment

__all__ = ["Task"]


@dataclass(frozen=True)
class Task:
    """One benchmark. Subclasses implement ``render_prompt``, ``prompt_template`` and ``score``."""

    name: str  # the task id of experiment files, CLIs and result paths
    version: int  # TASK_VERSION of the task module, recorded in every metrics file
    dataset: str  # name in ual.data.DATASETS
    split: str | None  # None: taken from the experiment (math: evaluate.math_split)
    stop_strings: tuple[str, ...]  # generation ends at the earliest one (cut from the output)
    match_key: str  # how outputs are matched to items: "id" (ours) or "instruction" (alpaca_eval's key)
    label: str = ""  # its result column in tables and figure titles, e.g. "GSM8K acc. (%)"
    percent_scale: float = 100.0  # its metric times this is in percent (accuracies are fractions: 100)
    low_entropy: bool = False  # one correct answer (math): averaged into table_main's low-entropy column
    judged: bool = False  # scored by a pairwise judge: its position bias is shown beside the win rate

    def records(self, experiment: Experiment) -> list[dict]:
        """The items the experiment evaluates: ``evaluate.sizes[name]`` drawn by ``data.seed``."""
        from ual.data import load_records, subsample

        if self.name not in experiment.evaluate.sizes:
            raise KeyError(
                f"experiment '{experiment.name}': evaluate.sizes has no entry for task '{self.name}'"
            )
        split = self.split or experiment.evaluate.math_split
        records = load_records(self.dataset, split, experiment.data.mirror)
        return subsample(records, experiment.evaluate.sizes[self.name], experiment.data.seed)

    def prompt_template(self, model_template: str) -> str:
        """The ``ual.prompts`` template this task's prompts are written in, for a model trained on
        ``model_template``: it decides how the prompt text becomes token ids."""
        raise NotImplementedError

    def render_prompt(self, record: dict, model_template: str, tokenizer: Any = None) -> str:
        """The generation prompt of one item for a model trained on ``model_template``."""
        raise NotImplementedError

    def describe_prompt(self, model_template: str) -> str:
        """What the prompt is, in words, for the generation metadata."""
        return self.prompt_template(model_template)

    def score(
        self,
        outputs: dict[str, str],
        records: list[dict],
        experiment: Experiment,
        out: Path,
        outputs_path: Path,
    ) -> dict[str, Any]:
        """Score ``outputs`` (record id -> completion), write per-item records beside ``out``; the metrics."""
        raise NotImplementedError
