"""The task interface: one benchmark as one unit, as an lm-eval ``Task`` is.

A ``Task`` gives everything a stage needs to know about a benchmark: its items for an experiment
(``records``: dataset and ``split_for(experiment)``, ``evaluate.sizes[name]`` drawn by ``data.seed``), the
data its scoring reads (``evaluation_inputs``: its items and, e.g., reference outputs; listed by
``ual.inputs``), the prompt text of an item and the template whose token rules apply to it (``render_prompt``,
``prompt_template``), the stop strings of generation, how outputs are matched to items (``match_key``), the
scoring (``score``: outputs -> metrics and per-item records written beside the metrics file), its held-out
references for the calibration analysis (``calibration_input``, ``calibration_references``,
``reference_label``; read by ``ual.analysis.references``), how tables and figures show it (``label``,
``percent_scale``, ``low_entropy``, ``judged``) and a ``version`` bumped whenever outputs change.

Inputs and outputs of ``score``: ``outputs`` maps record id -> completion for exactly the task's records;
``out`` is the metrics file ``python -m ual.evaluate`` writes (the task writes its per-item records beside it)
and the returned dict goes into that file. Tasks never import ``ual.evaluate`` (the CLI imports them) and
need nothing of ``ual.config`` at import time (``ual.experiment`` checks task names against ``ual.tasks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ual.config import Experiment

__all__ = ["Task", "TaskInput"]


@dataclass(frozen=True)
class TaskInput:
    """One thing a task reads: a registered split of ``ual.data.DATASETS`` (``dataset``, ``split``), or
    reference outputs (``reference``: a generator of ``ual.data.REFERENCE_FILES`` or a model_outputs JSON path).

    ``name`` None is the task's own items (role ``evaluate.<task>``, data group ``<task>``); another name is
    more data its scoring reads (role ``evaluate.<task>.<name>``, data group ``<name>``; ``ual.inputs``).
    """

    name: str | None = None
    dataset: str | None = None
    split: str | None = None
    reference: str | None = None


@dataclass(frozen=True)
class Task:
    """One benchmark. Subclasses implement ``render_prompt``, ``prompt_template`` and ``score``."""

    name: str  # the task id of experiment files, CLIs and result paths
    version: int  # TASK_VERSION of the task module, recorded in every metrics file
    dataset: str  # name in ual.data.DATASETS
    split: str | None  # None: the experiment chooses it (``split_for``; math: evaluate.math_split)
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
        records = load_records(self.dataset, self.split_for(experiment), experiment.data.mirror)
        return subsample(records, experiment.evaluate.sizes[self.name], experiment.data.seed)

    def split_for(self, experiment: Experiment) -> str:
        """The split of ``dataset`` the experiment evaluates: ``split``, or the experiment's choice (a task
        with ``split`` None overrides this)."""
        if self.split is None:
            raise NotImplementedError(f"task '{self.name}' has no fixed split and does not say how to choose one")
        return self.split

    def evaluation_inputs(self, experiment: Experiment) -> list[TaskInput]:
        """What scoring the task reads (``ual.inputs`` lists them): its items, and nothing more by default."""
        return [TaskInput(None, self.dataset, self.split_for(experiment))]

    def calibration_input(self, experiment: Experiment) -> TaskInput:
        """The source of its held-out references for the calibration analysis (by default its items' split)."""
        return TaskInput(None, self.dataset, self.split_for(experiment))

    def calibration_references(self, experiment: Experiment) -> tuple[list[dict], str]:
        """Every held-out reference of the calibration analysis (``ual.data`` records whose ``output`` is the
        reference answer, source order) and their origin (the mirror file, or the hub dataset): by default
        the gold solutions of ``calibration_input``'s split."""
        from ual.data import DATASETS, load_records, resolve_mirror

        source = self.calibration_input(experiment)
        entry = DATASETS[source.dataset][source.split]
        return (load_records(source.dataset, source.split, experiment.data.mirror),
                mirror_origin(resolve_mirror(experiment.data.mirror), entry.mirror_file, f"hub:{entry.hub_id}"))

    def reference_label(self, experiment: Experiment) -> str:
        """What its calibration references are, for tables and figures."""
        source = self.calibration_input(experiment)
        return f"{self.name} references ({source.dataset}/{source.split})"

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


def mirror_origin(root: Path | None, relative: str | None, fallback: str) -> str:
    """The path of ``relative`` under the mirror ``root`` if that file is there, else ``fallback``."""
    if root is not None and relative is not None and (root / relative).is_file():
        return str(root / relative)
    return fallback
