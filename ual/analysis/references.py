"""The analysis stage's held-out records: training-distribution records (clustering) and task references.

Clustering (``heldout_records``): ``analysis.eval_samples`` records of the scenario's own datasets that are
not in its training set (moved here from ``ual.analysis.hidden_states``, unchanged).

Calibration (``analysis.calibration``): held-out references of each task type.

A reference is a record of the ual.data schema ({id, dataset, instruction, input, output, answer}) whose
``output`` is a reference answer the models never trained on; the model is fed its prompt and the reference
(teacher forcing) and scored on every response token (``ual.analysis.calibration``).

Sources: each task says where its references come from (``ual.tasks.Task.calibration_references`` and
``reference_label``): AlpacaEval the outputs of ``analysis.calibration.alpacaeval_references`` (e.g.
gpt4_1106_preview) for the 805 AlpacaEval instructions; GSM8K its test gold solutions, rewritten to the
MetaMath answer format by ``ual.data``; MATH the solutions of ``evaluate.math_split``.

Draw (``draw_references``): the references are tokenised as training tokenises them (``ual.collate``, cut at
``train.max_length``); those left without any response token (prompt too long, or an empty output) are not
eligible and are counted; ``analysis.calibration.sizes[task]`` of the eligible ones are drawn with
``ual.data.subsample(pool, size, analysis.seed)``. Fewer eligible references than asked is an error naming the
file and the key, never a smaller sample. The draw depends on records, tokenizer, max_length and seed only,
so every model of one tokenizer (base, SFT, LS, UAL, ...) is scored on the very same tokens.

A new task brings its references with it (``Task.calibration_references``); nothing here names a task.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "REFERENCES_VERSION",
    "ReferenceSet",
    "draw_references",
    "heldout_records",
    "load_references",
    "reference_label",
    "split_evenly",
]

REFERENCES_VERSION = 1


@dataclass(frozen=True)
class ReferenceSet:
    """The drawn references of one task type and where they came from."""

    task: str
    origin: str  # the file (or hub dataset) they were read from
    records: list[dict[str, Any]]
    n_available: int  # references in the source
    n_eligible: int  # of them, with a response token within max_length

    @property
    def ids_sha256(self) -> str:
        return hashlib.sha256("\n".join(record["id"] for record in self.records).encode()).hexdigest()


def reference_label(experiment: Any, task: str) -> str:
    """What the references of ``task`` are, for tables and figures (``Task.reference_label``)."""
    from ual.tasks import get_task

    return get_task(task).reference_label(experiment)


def load_references(experiment: Any, task: str) -> tuple[list[dict[str, Any]], str]:
    """Every reference of ``task`` (source order) and its origin (``Task.calibration_references``); an unknown
    task or an empty source is an error."""
    from ual.tasks import TASKS

    if task not in TASKS:
        raise ValueError(
            f"analysis.calibration.sizes names task '{task}', which is not a registered task (ual.tasks.TASKS); "
            f"known tasks: {', '.join(sorted(TASKS))}"
        )
    records, origin = TASKS[task].calibration_references(experiment)
    if not records:
        raise ValueError(f"{origin}: no references of task '{task}' (analysis.calibration.sizes.{task})")
    return records, origin


def draw_references(
    task: str,
    records: Sequence[dict[str, Any]],
    origin: str,
    has_target: Sequence[bool],
    size: int | None,
    seed: int,
    max_length: int,
) -> ReferenceSet:
    """``size`` of the references with a response token (``has_target``), by ``subsample(pool, size, seed)``.

    Raises:
        ValueError: naming ``origin`` and ``analysis.calibration.sizes.<task>`` when fewer are eligible.
    """
    from ual.data import subsample

    pool = [record for record, keep in zip(records, has_target, strict=True) if keep]
    wanted = len(pool) if size is None else size
    if len(pool) < wanted or not pool:
        raise ValueError(
            f"{origin}: analysis.calibration.sizes.{task} asks for {wanted} references, but only "
            f"{len(pool)} of its {len(records)} have a response token within train.max_length={max_length}"
        )
    return ReferenceSet(task, origin, subsample(pool, size, seed), len(records), len(pool))


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` items over ``parts`` sources, the remainder to the first ones.

    >>> split_evenly(33, 2)
    [17, 16]
    """
    return [total // parts + (1 if part < total % parts else 0) for part in range(parts)]


def heldout_records(experiment: Any, scenario: str) -> list[dict[str, Any]]:
    """``analysis.eval_samples`` records of the scenario's datasets that are not in its training set.

    Rule: ``ual.data.load_records`` of each dataset slice of the scenario (mixed: high and low, samples split
    evenly), minus every id in ``ual.data.build_scenario(experiment.data, scenario)``, then
    ``ual.data.subsample(pool, size, analysis.seed)``.
    """
    from ual import data
    from ual.scenarios import SCENARIO_SLICES

    data_cfg, analysis = experiment.data, experiment.analysis
    if scenario not in data_cfg.scenarios:
        raise ValueError(
            f"scenario {scenario!r} is not in data.scenarios {list(data_cfg.scenarios)} of experiment "
            f"{experiment.name!r}"
        )
    training_ids = {record["id"] for record in data.build_scenario(data_cfg, scenario)}
    slices = [getattr(data_cfg, name) for name in SCENARIO_SLICES[scenario]]
    records: list[dict[str, Any]] = []
    for data_slice, size in zip(slices, split_evenly(analysis.eval_samples, len(slices)), strict=True):
        if size == 0:
            continue
        loaded = data.load_records(data_slice.dataset, data_slice.split, mirror=data_cfg.mirror)
        pool = [record for record in loaded if record["id"] not in training_ids]
        if len(pool) < size:
            raise ValueError(
                f"analysis.eval_samples asks for {size} held-out records of {data_slice.dataset}/"
                f"{data_slice.split}, but only {len(pool)} of {len(loaded)} are not used for training"
            )
        records.extend(data.subsample(pool, size, analysis.seed))
    logger.info("held-out set for %s: %d records (%d training ids excluded)", scenario, len(records),
                len(training_ids))
    return records
