"""Read a registered dataset split into records, subsample it, and build the training scenarios.

Inputs: the split's one source (``ual.data.registry``): a file of the mirror folder (``resolve_mirror``: plain
upstream JSON / JSONL) or a pinned Hugging Face hub dataset. Outputs: ``list[dict]`` records (no files) and
``split_record`` / ``file_record``, the provenance of a split or file (mirror file and its sha256, or hub id
and revision).

Errors (``DataError``) name the file and the line: an absent mirror file (with its upstream URL and how to get
it), an empty file, a file that is not UTF-8, a line that is not JSON, a row that cannot be normalised. Line
numbers of JSONL files are the file's line numbers (blank lines count); JSON lists report the record index.
Exact duplicate records (same id) are dropped with a warning (14 of the 999 rows of alpaca_en_demo.json).
Subsampling ranks records by sha256(seed, id): deterministic, independent of file order, and nested (the
64-sample slice is contained in the 128-sample slice of the same seed).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ual.data.manifest import MANIFEST, describe_mirror, resolve_mirror
from ual.provenance import file_sha256
from ual.data.normalise import field
from ual.data.registry import DATASETS, MATH_SUBJECTS, REFERENCE_COLUMNS, REFERENCE_FILES, Source
from ual.scenarios import SCENARIO_SLICES, SCENARIOS

if TYPE_CHECKING:
    from ual.config import DataConfig

__all__ = [
    "DataError",
    "build_scenario",
    "load_alpaca_eval_references",
    "file_record",
    "load_records",
    "split_record",
    "subsample",
]

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset that cannot be found or a row that cannot be normalised (names the file and line)."""


# --------------------------------------------------------------------------- files


def _read_rows(path: Path) -> list[tuple[str, Any]]:
    """(place, row) pairs of a JSON list or JSONL file; place = "line N" (JSONL) or "record N" (JSON)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                rows.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
    else:
        try:
            loaded = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(loaded, list):
            raise DataError(f"{path}: expected a JSON list of records, got {type(loaded).__name__}")
        rows = [(f"record {number}", row) for number, row in enumerate(loaded, start=1)]
    if not rows:
        raise DataError(f"{path}: no records (the file is empty: {len(data)} bytes)")
    return rows


def _mirror_path(name: str, mirror: str | Path | None, what: str) -> Path:
    """The mirror file ``name``; DataError with its upstream URL and the ways to get it when absent."""
    path = resolve_mirror(mirror) / name
    if path.is_file():
        return path
    entry = MANIFEST.get(name)
    source = f"; it is {entry.url()} ({entry.size} bytes, sha256 {entry.sha256})" if entry else ""
    raise DataError(
        f"{what}: {path} is absent from {describe_mirror(mirror)}{source}. Get it with `python -m ual.data "
        f"fetch` (the workflow runs it itself), or on a machine without internet copy the file there or "
        f"point UAL_DATA_MIRROR at a folder that holds it"
    )


def _hub_rows(source: Source) -> list[tuple[str, Any]]:
    import datasets

    configs = MATH_SUBJECTS if source.hub_config == "all" else (source.hub_config,)
    rows: list[dict] = []
    for config in configs:
        rows.extend(
            datasets.load_dataset(source.hub_id, config, split=source.hub_split, revision=source.hub_revision)
        )
    return [(f"row {number}", row) for number, row in enumerate(rows, start=1)]


def _normalise_all(dataset: str, source: Source, rows: list[tuple[str, Any]], origin: str) -> list[dict]:
    records, seen = [], set()
    for place, row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{origin}: {place}: expected a JSON object, got {type(row).__name__}")
        try:
            record = source.normalise(dataset, row)
        except ValueError as exc:
            raise DataError(f"{origin}: {place}: {exc}") from None
        if record["id"] in seen:
            continue
        seen.add(record["id"])
        records.append(record)
    if len(records) < len(rows):
        logger.warning("%s: dropped %d exact duplicate rows", origin, len(rows) - len(records))
    return records


def _source(dataset: str, split: str) -> Source:
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset '{dataset}'; registered: {sorted(DATASETS)}")
    if split not in DATASETS[dataset]:
        raise DataError(f"dataset '{dataset}' has no split '{split}'; splits: {sorted(DATASETS[dataset])}")
    return DATASETS[dataset][split]


# --------------------------------------------------------------------------- loaders


def load_records(dataset: str, split: str, mirror: str | Path | None = None) -> list[dict]:
    """All records of ``dataset``/``split``, normalised, in upstream order, duplicates dropped.

    Raises:
        DataError: unknown dataset or split; an absent mirror file (with its URL and how to fetch it); a hub
            source without a pinned revision, or one that cannot be loaded (with the tiny-profile
            substitute); an empty, non-UTF-8 or malformed file (file and line).
    """
    source = _source(dataset, split)
    if source.mirror_file is not None:
        path = _mirror_path(source.mirror_file, mirror, f"{dataset}/{split}")
        logger.info("loading %s/%s from the mirror: %s", dataset, split, path)
        return _normalise_all(dataset, source, _read_rows(path), str(path))
    hint = f"; the tiny profile uses {source.substitute} instead" if source.substitute else ""
    if source.hub_revision is None:
        raise DataError(
            f"{dataset}/{split}: the Hugging Face hub source {source.hub_id} has no pinned revision "
            f"(ual/data/registry.py); pin its commit before using it{hint}"
        )
    try:
        logger.info("loading %s/%s from the Hugging Face hub: %s", dataset, split, source.hub_label)
        rows = _hub_rows(source)
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes the one error naming the source
        raise DataError(
            f"{dataset}/{split}: the mirror does not carry it, and the Hugging Face hub dataset "
            f"{source.hub_label} could not be loaded ({type(exc).__name__}: {str(exc)[:200]}){hint}"
        ) from None
    return _normalise_all(dataset, source, rows, f"hub:{source.hub_id}@{source.hub_revision}")


def load_alpaca_eval_references(generator: str, mirror: str | Path | None = None) -> list[dict]:
    """Reference outputs of the reference set ``generator`` (a name of ``REFERENCE_FILES``), in file order.

    Each item: ``{"instruction", "output", "generator", "dataset"}`` exactly as alpaca_eval ships them (mirror
    ``alpaca_eval/results/<generator>/model_outputs.json``; for an annotations file the ``output_1`` column,
    ``REFERENCE_COLUMNS``, and its ``generator_1``).
    """
    if generator not in REFERENCE_FILES:
        raise DataError(
            f"alpaca_eval references of '{generator}': the mirror carries only {sorted(REFERENCE_FILES)} "
            "(or give evaluate.reference_outputs as a model_outputs JSON path)"
        )
    path = _mirror_path(REFERENCE_FILES[generator], mirror, f"alpaca_eval references of '{generator}'")
    references = []
    for place, row in _read_rows(path):
        try:
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            column = REFERENCE_COLUMNS.get(generator, "output")
            item = {"instruction": field(row, "instruction"), "output": field(row, column, allow_empty=True)}
            item["generator"] = row.get("generator_1" if column == "output_1" else "generator", generator)
            item["dataset"] = row.get("dataset", "alpaca_eval")
        except ValueError as exc:
            raise DataError(f"{path}: {place}: {exc}") from None
        references.append(item)
    return references


def file_record(name: str, mirror: str | Path | None = None) -> dict:
    """Provenance of the mirror file ``name``: its sha256 and size as found (the manifest's when absent),
    whether it is present and matches the manifest, and the upstream file it copies (and its licence)."""
    entry, path = MANIFEST.get(name), resolve_mirror(mirror) / name
    if entry is None:
        raise DataError(f"{name}: not a file of the data manifest (ual/data/manifest.json)")
    present = path.is_file()
    sha256 = file_sha256(path) if present else entry.sha256
    return {
        "source": "mirror",
        "file": name,
        "sha256": sha256,
        "size": path.stat().st_size if present else entry.size,
        "present": present,
        "matches_manifest": sha256 == entry.sha256,
        "upstream": entry.upstream,
        "licence": entry.licence,
    }


def split_record(dataset: str, split: str, mirror: str | Path | None = None) -> dict:
    """Provenance of a split: ``file_record`` of its mirror file, or its hub id, config, split, revision."""
    source = _source(dataset, split)
    if source.mirror_file is not None:
        return file_record(source.mirror_file, mirror)
    return {
        "source": "hub",
        "hub_id": source.hub_id,
        "hub_config": source.hub_config,
        "hub_split": source.hub_split,
        "revision": source.hub_revision,
    }


# --------------------------------------------------------------------------- sampling, scenarios


def subsample(records: list[dict], size: int | None, seed: int, origin: str | None = None) -> list[dict]:
    """``size`` records chosen by ``seed`` (all when None), kept in their original order.

    Records are ranked by sha256(seed, id), so the choice depends only on content and seed. ``origin`` names
    where the records came from in the error when there are fewer than ``size``.
    """
    if size is None:
        return list(records)
    if size > len(records):
        where = f"{origin}: " if origin else ""
        raise DataError(f"{where}subsample size {size} exceeds the {len(records)} records available")
    rank = {r["id"]: hashlib.sha256(f"{seed}:{r['id']}".encode()).hexdigest() for r in records}
    chosen = set(sorted(rank, key=rank.__getitem__)[:size])
    return [r for r in records if r["id"] in chosen]


def _origin(dataset: str, split: str, mirror: str | Path | None) -> str:
    source = _source(dataset, split)
    if source.mirror_file is not None:
        return f"{dataset}/{split} ({resolve_mirror(mirror) / source.mirror_file})"
    return f"{dataset}/{split} (hub {source.hub_label})"


def build_scenario(data_cfg: DataConfig, scenario: str) -> list[dict]:
    """Training set of a scenario: ``high``, ``low`` or ``mixed`` (= high followed by low)."""
    if scenario not in SCENARIOS:
        raise DataError(f"unknown scenario '{scenario}'; expected {', '.join(SCENARIOS)}")
    records: list[dict] = []
    for part in SCENARIO_SLICES[scenario]:
        slice_ = getattr(data_cfg, part)
        loaded = load_records(slice_.dataset, slice_.split, data_cfg.mirror)
        origin = f"data.{part}: " + _origin(slice_.dataset, slice_.split, data_cfg.mirror)
        records += subsample(loaded, slice_.size, data_cfg.seed, origin)
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise DataError(f"scenario '{scenario}': the high and low slices share records (duplicate ids)")
    return records
