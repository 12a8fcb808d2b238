"""What an experiment reads, and from where: the data sources behind its training slices and evaluation tasks.

Every dataset split and reference file an experiment reads, each under a role (``data.high``, ``data.low``,
``evaluate.<task>`` and ``evaluate.<task>.<name>``, ``analysis.calibration.<task>``), resolved to its one source (``ual.data.registry``):
a mirror file of the data manifest, with its sha256 as found (the manifest's while it is not fetched yet), or
a pinned Hugging Face hub dataset. A model_outputs JSON path given as ``evaluate.reference_outputs`` is a
plain file with its sha256.

Each task says what it reads (``ual.tasks.Task.evaluation_inputs``: its items and, for AlpacaEval, the
reference outputs ``evaluate.alpacaeval.references``; ``Task.calibration_input``: its held-out references).
Roles fall into data groups (``role_group``): ``train`` (data.high, data.low), one per task (its items), one
per further named input of a task (``evaluate.<task>.<name>`` -> ``<name>``: ``references``) and
``calibration`` (``analysis.calibration.<task>``: the held-out references the analysis stage scores
teacher-forced, ``ual.analysis.references``); ``task_data_groups`` are the groups a task's scoring reads. The workflow has one fetch_data job per group, writing ``results/<exp>/data/<group>.json``
(``write_sources_record``); a job that reads a group takes that file as input, and the fetch job's params are
the group's ``data_trigger`` (each mirror file's sha256 as found, each hub id and revision), so a changed data
file reruns its group's fetch job and, through the dependency, exactly the jobs that read the group.

Used by ``python -m ual.fetch --experiment [--group]`` (which manifest files to fetch, and the record it
writes), by the workflow (``workflow/rules/common.smk``) and by ``ual.report`` (the provenance of every table
lists the records, ``read_sources_records``). This module writes and reads the record files. It sits above
``ual.data`` and ``ual.tasks`` (whose ``TASKS`` say what a task reads).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ual.config import Experiment
from ual.data import (
    DATASETS,
    MANIFEST,
    REFERENCE_FILES,
    DataError,
    ManifestFile,
    file_record,
    resolve_mirror,
    split_record,
)
from ual.provenance import file_sha256
from ual.provenance import write_text_atomic
from ual.tasks import TASKS, TaskInput

__all__ = [
    "DataInput",
    "TRAIN_ROLES",
    "data_groups",
    "data_sources",
    "data_trigger",
    "experiment_inputs",
    "manifest_files",
    "read_sources_records",
    "role_group",
    "task_data_groups",
    "write_sources_record",
]

TRAIN_ROLES = ("data.high", "data.low")
RECORD_VERSION = 1


@dataclass(frozen=True)
class DataInput:
    """One thing an experiment reads: a registered split, or AlpacaEval reference outputs."""

    role: str
    dataset: str | None = None
    split: str | None = None
    reference: str | None = None  # a generator of REFERENCE_FILES or a model_outputs JSON path

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.split}" if self.dataset else f"alpaca_eval references {self.reference}"

    @property
    def group(self) -> str:
        return role_group(self.role)


def role_group(role: str) -> str:
    """The data group of a role, one record file (and workflow job) each: ``train`` (data.high, data.low),
    ``calibration`` (analysis.calibration.<task>), the task name (``evaluate.<task>``: its items) or the name of
    a further input of a task (``evaluate.<task>.<name>``, e.g. AlpacaEval's ``references``)."""
    if role in TRAIN_ROLES:
        return "train"
    if role.startswith("analysis.calibration."):
        return "calibration"
    return role.removeprefix("evaluate.").split(".")[-1]


def data_groups(experiment: Experiment) -> list[str]:
    """The experiment's data groups, in order: train, then one per task (and its further inputs:
    references for AlpacaEval), then calibration."""
    return list(dict.fromkeys(item.group for item in experiment_inputs(experiment)))


def _task_inputs(experiment: Experiment, task: str) -> list[DataInput]:
    """What scoring ``task`` reads, under its roles (``Task.evaluation_inputs``)."""
    return [_as_input(f"evaluate.{task}" + (f".{item.name}" if item.name else ""), item)
            for item in TASKS[task].evaluation_inputs(experiment)]


def _as_input(role: str, item: TaskInput) -> DataInput:
    return DataInput(role, item.dataset, item.split, item.reference)


def task_data_groups(experiment: Experiment, task: str) -> list[str]:
    """The data groups scoring ``task`` reads (the workflow's score_task inputs), e.g. ``["alpacaeval",
    "references"]``."""
    return list(dict.fromkeys(item.group for item in _task_inputs(experiment, task)))


def experiment_inputs(experiment: Experiment) -> list[DataInput]:
    """Every split and reference file the experiment's stages read, with its role."""
    data = experiment.data
    inputs = [DataInput(f"data.{part}", getattr(data, part).dataset, getattr(data, part).split)
              for part in ("high", "low")]
    for task in experiment.evaluate.tasks:
        inputs.extend(_task_inputs(experiment, task))
    for task in experiment.analysis.calibration.sizes:  # the references of ual.analysis.references
        inputs.append(_as_input(f"analysis.calibration.{task}", TASKS[task].calibration_input(experiment)))
    return inputs


def _mirror_file(item: DataInput) -> str | None:
    """The manifest file behind an input (None: hub split or reference JSON path); DataError if unknown."""
    if item.dataset is not None:
        if item.dataset not in DATASETS or item.split not in DATASETS[item.dataset]:
            raise DataError(f"{item.role}: {item.label} is not a registered split (ual.data.DATASETS)")
        return DATASETS[item.dataset][item.split].mirror_file
    if item.reference.endswith(".json"):
        return None
    if item.reference not in REFERENCE_FILES:
        raise DataError(f"{item.role}: no reference outputs of '{item.reference}' in the mirror "
                        f"(known: {sorted(REFERENCE_FILES)}; or give a model_outputs JSON path)")
    return REFERENCE_FILES[item.reference]


def _source_fields(item: DataInput, name: str | None, mirror: str | None) -> dict[str, Any]:
    if name is not None:
        return file_record(name, mirror)
    if item.dataset is not None:
        return split_record(item.dataset, item.split, mirror)
    path = Path(item.reference)
    return {"source": "file", "file": str(path), "sha256": file_sha256(path) if path.is_file() else None}


def _key(record: dict[str, Any]) -> str:
    if record["source"] == "hub":
        return f"hub:{record['hub_id']}:{record['hub_config']}/{record['hub_split']}"
    return record["file"]


def _merge(records: dict[str, dict[str, Any]], record: dict[str, Any]) -> None:
    """Add ``record`` to ``records`` (by source), uniting ``read_as`` and ``used_for`` with an earlier one."""
    known = records.setdefault(_key(record), {**record, "read_as": [], "used_for": []})
    for field_ in ("read_as", "used_for"):
        known[field_] += [value for value in record[field_] if value not in known[field_]]


def data_sources(experiment: Experiment, group: str | None = None) -> list[dict[str, Any]]:
    """One provenance record per distinct source the experiment (or one data ``group`` of it) reads, in
    first-use order: ``read_as`` (what it is read as), ``used_for`` (roles) and the source fields of
    ``ual.data.file_record`` / ``split_record`` (or, for a reference JSON path, ``{"source": "file", "file",
    "sha256"}``). Mirror files are hashed as found: their sha256 is the data's rerun trigger."""
    records: dict[str, dict[str, Any]] = {}
    for item in experiment_inputs(experiment):
        if group is None or item.group == group:
            fields = _source_fields(item, _mirror_file(item), experiment.data.mirror)
            _merge(records, {**fields, "read_as": [item.label], "used_for": [item.role]})
    return list(records.values())


def manifest_files(experiment: Experiment, group: str | None = None) -> list[ManifestFile]:
    """The manifest entries the experiment (or one data ``group``) reads: what ``fetch`` downloads."""
    names = (_mirror_file(item) for item in experiment_inputs(experiment) if group in (None, item.group))
    return [MANIFEST[name] for name in dict.fromkeys(n for n in names if n is not None)]


def _trigger_token(record: dict[str, Any]) -> str:
    if record["source"] == "hub":
        config = f":{record['hub_config']}" if record["hub_config"] else ""
        return f"hub:{record['hub_id']}{config}/{record['hub_split']}@{record['revision']}"
    return f"{record['file']}={(record['sha256'] or 'absent')[:16]}"


def data_trigger(sources: list[dict[str, Any]], group: str | None = None) -> str:
    """A Snakemake params value that changes exactly when a source of ``group`` (all when None) changes:
    which files or hub datasets they are, a mirror file's sha256 as found, a hub revision."""
    return " ".join(
        _trigger_token(r) for r in sources if group is None or group in {role_group(u) for u in r["used_for"]}
    )


def write_sources_record(path: str | Path, experiment: Experiment, group: str | None,
                         sources: list[dict[str, Any]]) -> None:
    """``results/<exp>/data/<group>.json``: experiment, data group, mirror folder and the source records."""
    payload = {"version": RECORD_VERSION, "experiment": experiment.name, "group": group,
               "mirror": str(resolve_mirror(experiment.data.mirror).resolve()), "sources": sources}
    write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def read_sources_records(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The source records of the record files (``write_sources_record``), united by source in file order;
    ValueError naming the file."""
    records: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the data sources record ({exc})") from None
        if not isinstance(payload, dict) or payload.get("version") != RECORD_VERSION or not isinstance(
            payload.get("sources"), list
        ):
            raise ValueError(f"{path}: not a data sources record (version {RECORD_VERSION}, 'sources')")
        for record in payload["sources"]:
            _merge(records, record)
    return list(records.values())
