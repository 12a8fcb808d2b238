"""Dataset registry: every training and evaluation set normalised to one record schema.

Record (a plain dict): ``id`` (stable content hash), ``dataset``, ``instruction``, ``input`` (may be ""),
``output``, ``answer`` (the gold final answer of math sets as a string, else None).

Inputs: plain upstream JSON/JSONL files in a local mirror directory (argument, ``data.mirror`` in the
experiment, or env ``UAL_DATA_MIRROR``; layout of ``../shared/data/MANIFEST.md``), else the Hugging Face hub
via ``datasets``. Neither available: one ``DataError`` naming the mirror path tried and the hub id.
Outputs: ``list[dict]`` records (no files). Inspect a set with
``python -m ual.data --dataset gsm8k --split train --size 3 --seed 0``.

Normalisation choices (docs/method.md, "Scenarios and data"):
- ``gsm8k`` solutions are rewritten MetaMath-style: calculator annotations ``<<48/2=24>>`` dropped and the
  final ``#### X`` line replaced by ``The answer is: X``; ``answer`` = X with thousands commas removed (also
  used in the rewritten line, so the training target and the gold answer agree).
- ``math``: ``answer`` = the last brace-balanced ``\\boxed{...}`` of the solution (test, 5,000 problems)
  or the upstream ``answer`` field (math500; the two agree on all 500 shared problems); ``output`` = the
  solution unchanged.
- ``alpaca_eval`` (split ``eval``): the 805 instructions in alpaca_eval's order, ``output`` = "" (the
  references come from ``load_alpaca_eval_references``, in alpaca_eval's model_outputs format).
- Exact duplicate records (same id) are dropped with a warning (14 of the 999 rows of alpaca_en_demo.json),
  so ids are unique.
- Subsampling ranks records by sha256(seed, id): deterministic, independent of file order, and nested
  (the 64-sample slice is contained in the 128-sample slice of the same seed).

Not in the mirror (the paper profile loads them from the hub): alpaca (52k), alpaca_gpt4 (52k),
metamathqa (395k), math train. The tiny profile substitutes ``alpaca_gpt4_demo`` (999 Alpaca-GPT4-style
rows) for the high-entropy set and ``gsm8k`` train, rewritten as above, for MetaMathQA.

Extension point: add a ``Source`` to ``DATASETS`` (mirror file, hub id, row normaliser).

Changelog: v1 - initial.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ual.config import SCENARIO_SLICES, SCENARIOS, DataConfig

__all__ = [
    "DATASETS",
    "DataError",
    "build_scenario",
    "extract_boxed",
    "load_alpaca_eval_references",
    "load_records",
    "record_id",
    "resolve_mirror",
    "rewrite_gsm8k_solution",
    "subsample",
]

logger = logging.getLogger(__name__)

RECORD_KEYS = ("id", "dataset", "instruction", "input", "output", "answer")
ALPACA_EVAL_HUB_FILES = {  # generator -> file of the hub dataset tatsu-lab/alpaca_eval
    "text_davinci_003": "alpaca_eval.json",
    "gpt4_1106_preview": "alpaca_eval_gpt4_baseline.json",
}


class DataError(ValueError):
    """A dataset that cannot be found or a row that cannot be normalised (names the file and row)."""


# --------------------------------------------------------------------------- pure normalisers


def record_id(dataset: str, instruction: str, input: str, output: str) -> str:
    """Stable content hash of a record (first 16 hex digits of sha256).

    >>> record_id("gsm8k", "q", "", "a") == record_id("gsm8k", "q", "", "a")
    True
    """
    payload = json.dumps([dataset, instruction, input, output], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


_CALCULATOR = re.compile(r"<<[^<>]*>>")
_FINAL = re.compile(r"\n?####\s*(?P<answer>[^\n]*)\s*$")


def rewrite_gsm8k_solution(solution: str) -> tuple[str, str]:
    """GSM8K solution -> (MetaMath-style solution, answer).

    >>> rewrite_gsm8k_solution("She sold 48/2 = <<48/2=24>>24 clips.\\n#### 1,024")
    ('She sold 48/2 = 24 clips.\\nThe answer is: 1024', '1024')
    """
    match = _FINAL.search(solution)
    if match is None or not match.group("answer").strip():
        raise ValueError("solution has no final '#### <answer>' line")
    answer = match.group("answer").strip().replace(",", "")
    body = _CALCULATOR.sub("", solution[: match.start()]).rstrip()
    return f"{body}\nThe answer is: {answer}", answer


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def extract_boxed(solution: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``), brace-balanced; None if absent.

    >>> extract_boxed(r"so $\boxed{\frac{1}{2}}$ and not \boxed{3}.")
    '3'
    >>> extract_boxed(r"$\boxed{\left( 3, \frac{\pi}{2} \right)}$")
    '\\left( 3, \\frac{\\pi}{2} \\right)'
    >>> extract_boxed("no box") is None
    True
    """
    matches = list(_BOXED.finditer(solution))
    if not matches:
        return None
    rest = solution[matches[-1].end() :]
    depth, out = 1, []
    for char in rest:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return "".join(out).strip()
        out.append(char)
    return None  # unbalanced


def _field(row: dict[str, Any], key: str, allow_empty: bool = False) -> str:
    if key not in row:
        raise ValueError(f"missing field '{key}'")
    value = row[key]
    if not isinstance(value, str):
        raise ValueError(f"field '{key}' must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValueError(f"field '{key}' is empty")
    return value


def _make(dataset: str, instruction: str, input: str, output: str, answer: str | None) -> dict:
    return {
        "id": record_id(dataset, instruction, input, output),
        "dataset": dataset,
        "instruction": instruction,
        "input": input,
        "output": output,
        "answer": answer,
    }


def _alpaca(dataset: str, row: dict) -> dict:
    return _make(dataset, _field(row, "instruction"), _field(row, "input", True), _field(row, "output"), None)


def _metamathqa(dataset: str, row: dict) -> dict:
    response = _field(row, "response")
    answer = response.rsplit("The answer is:", 1)[1].strip() if "The answer is:" in response else None
    return _make(dataset, _field(row, "query"), "", response, answer)


def _gsm8k(dataset: str, row: dict) -> dict:
    output, answer = rewrite_gsm8k_solution(_field(row, "answer"))
    return _make(dataset, _field(row, "question"), "", output, answer)


def _math(dataset: str, row: dict) -> dict:
    solution = _field(row, "solution")
    if "answer" in row:
        answer = _field(row, "answer")
    else:
        answer = extract_boxed(solution)
        if answer is None:
            raise ValueError("solution has no \\boxed{...} answer")
    return _make(dataset, _field(row, "problem"), "", solution, answer)


def _alpaca_eval(dataset: str, row: dict) -> dict:
    return _make(dataset, _field(row, "instruction"), "", "", None)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Source:
    """Where one split lives: a mirror file (or None), a hub id, and the row normaliser."""

    mirror_file: str | None
    hub_id: str | None
    normalise: Callable[[str, dict], dict]
    hub_config: str | None = None
    hub_split: str = "train"
    hub_file: str | None = None  # a JSON file of a hub dataset repo instead of load_dataset
    substitute: str | None = None  # what the tiny profile uses when the mirror lacks the file


_SUB_HIGH = "alpaca_gpt4_demo (mirror instruct/alpaca_en_demo.json, 999 Alpaca-GPT4-style records)"
_SUB_LOW = "gsm8k train (mirror gsm8k/train.jsonl, rewritten to end with 'The answer is: X')"

DATASETS: dict[str, dict[str, Source]] = {
    "alpaca_gpt4": {"train": Source(None, "vicgalle/alpaca-gpt4", _alpaca, substitute=_SUB_HIGH)},
    "alpaca": {"train": Source(None, "tatsu-lab/alpaca", _alpaca, substitute=_SUB_HIGH)},
    # LLaMA-Factory's demo file exists only as a repository file, so there is no hub fallback.
    "alpaca_gpt4_demo": {"train": Source("instruct/alpaca_en_demo.json", None, _alpaca)},
    "metamathqa": {"train": Source(None, "meta-math/MetaMathQA", _metamathqa, substitute=_SUB_LOW)},
    "gsm8k": {
        "train": Source("gsm8k/train.jsonl", "openai/gsm8k", _gsm8k, hub_config="main"),
        "test": Source("gsm8k/test.jsonl", "openai/gsm8k", _gsm8k, hub_config="main", hub_split="test"),
    },
    "math": {
        "train": Source(None, "EleutherAI/hendrycks_math", _math, hub_config="all", substitute=_SUB_LOW),
        "test": Source(
            "math/test.jsonl", "EleutherAI/hendrycks_math", _math, hub_config="all", hub_split="test"
        ),
        "math500": Source("math/math500.jsonl", "HuggingFaceH4/MATH-500", _math, hub_split="test"),
    },
    "alpaca_eval": {
        "eval": Source(
            "alpaca_eval/results/text_davinci_003/model_outputs.json",
            "tatsu-lab/alpaca_eval",
            _alpaca_eval,
            hub_file="alpaca_eval.json",
        )
    },
}
_MATH_SUBJECTS = (  # EleutherAI/hendrycks_math has one config per subject; "all" concatenates them
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


# --------------------------------------------------------------------------- I/O


def resolve_mirror(mirror: str | Path | None) -> Path | None:
    """The mirror directory: the argument, else env ``UAL_DATA_MIRROR``, else None (hub only)."""
    value = mirror if mirror is not None else os.environ.get("UAL_DATA_MIRROR")
    return Path(value) if value else None


def _read_rows(path: Path) -> list[dict]:
    """Rows of a JSON list or JSONL file; a bad line raises DataError naming the file and row."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: row {number}: not valid JSON ({exc.msg})") from None
        return rows
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(rows).__name__}")
    return rows


def _hub_rows(source: Source) -> list[dict]:
    if source.hub_file is not None:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(source.hub_id, source.hub_file, repo_type="dataset")
        return json.loads(Path(path).read_text(encoding="utf-8"))
    import datasets

    configs = _MATH_SUBJECTS if source.hub_config == "all" else (source.hub_config,)
    rows: list[dict] = []
    for config in configs:
        rows.extend(datasets.load_dataset(source.hub_id, config, split=source.hub_split))
    return rows


def _normalise_all(dataset: str, source: Source, rows: list, origin: str) -> list[dict]:
    records, seen = [], set()
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError(f"{origin}: row {number}: expected a JSON object, got {type(row).__name__}")
        try:
            record = source.normalise(dataset, row)
        except ValueError as exc:
            raise DataError(f"{origin}: row {number}: {exc}") from None
        if record["id"] in seen:
            continue
        seen.add(record["id"])
        records.append(record)
    if len(records) < len(rows):
        logger.warning("%s: dropped %d exact duplicate rows", origin, len(rows) - len(records))
    return records


def load_records(dataset: str, split: str, mirror: str | Path | None = None) -> list[dict]:
    """All records of ``dataset``/``split``, normalised, in upstream order, duplicates dropped.

    Raises:
        DataError: unknown dataset or split; the file is in neither the mirror nor reachable on the hub
            (one message naming both, and the tiny-profile substitute where the mirror lacks it); a
            malformed row (file and 1-based row number).
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset '{dataset}'; registered: {sorted(DATASETS)}")
    if split not in DATASETS[dataset]:
        raise DataError(f"dataset '{dataset}' has no split '{split}'; splits: {sorted(DATASETS[dataset])}")
    source = DATASETS[dataset][split]
    root = resolve_mirror(mirror)
    if root is not None and source.mirror_file is not None and (root / source.mirror_file).is_file():
        path = root / source.mirror_file
        logger.info("loading %s/%s from the mirror: %s", dataset, split, path)
        return _normalise_all(dataset, source, _read_rows(path), str(path))

    if root is None:
        tried = "no mirror (data.mirror and env UAL_DATA_MIRROR unset)"
    elif source.mirror_file is None:
        tried = f"the mirror {root} (which does not carry {dataset}/{split}, see its MANIFEST.md)"
    else:
        tried = f"the mirror file {root / source.mirror_file} (absent)"
    if source.hub_id is None:
        raise DataError(f"{dataset}/{split}: not found in {tried}; it has no Hugging Face hub source")
    hub = source.hub_id + (f" (config {source.hub_config})" if source.hub_config else "")
    try:
        logger.info("loading %s/%s from the Hugging Face hub: %s", dataset, split, hub)
        rows = _hub_rows(source)
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes the one combined error
        hint = f"; the tiny profile uses {source.substitute} instead" if source.substitute else ""
        raise DataError(
            f"{dataset}/{split}: not found in {tried}, and the Hugging Face hub dataset {hub} could not be "
            f"loaded ({type(exc).__name__}: {str(exc)[:200]}){hint}"
        ) from None
    return _normalise_all(dataset, source, rows, f"hub:{source.hub_id}")


def load_alpaca_eval_references(generator: str, mirror: str | Path | None = None) -> list[dict]:
    """Reference outputs of ``generator`` in alpaca_eval's model_outputs format, in instruction order.

    Each item: ``{"instruction", "output", "generator", "dataset"}`` exactly as alpaca_eval ships them
    (mirror ``alpaca_eval/results/<generator>/model_outputs.json``; hub file of ``tatsu-lab/alpaca_eval``).
    """
    root = resolve_mirror(mirror)
    relative = f"alpaca_eval/results/{generator}/model_outputs.json"
    if root is not None and (root / relative).is_file():
        origin, rows = str(root / relative), _read_rows(root / relative)
    else:
        tried = f"the mirror file {root / relative} (absent)" if root else "no mirror (UAL_DATA_MIRROR unset)"
        if generator not in ALPACA_EVAL_HUB_FILES:
            raise DataError(
                f"alpaca_eval references of '{generator}': not found in {tried}; the hub "
                f"dataset tatsu-lab/alpaca_eval carries only {sorted(ALPACA_EVAL_HUB_FILES)}"
            )
        source = Source(
            None, "tatsu-lab/alpaca_eval", _alpaca_eval, hub_file=ALPACA_EVAL_HUB_FILES[generator]
        )
        try:
            rows, origin = _hub_rows(source), f"hub:tatsu-lab/alpaca_eval/{source.hub_file}"
        except Exception as exc:  # noqa: BLE001
            raise DataError(
                f"alpaca_eval references of '{generator}': not found in {tried}, and the Hugging Face hub "
                f"dataset tatsu-lab/alpaca_eval ({source.hub_file}) could not be loaded "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            ) from None
    references = []
    for number, row in enumerate(rows, start=1):
        try:
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            item = {key: _field(row, key, allow_empty=key == "output") for key in ("instruction", "output")}
            item["generator"] = row.get("generator", generator)
            item["dataset"] = row.get("dataset", "alpaca_eval")
        except ValueError as exc:
            raise DataError(f"{origin}: row {number}: {exc}") from None
        references.append(item)
    return references


# --------------------------------------------------------------------------- sampling, scenarios


def subsample(records: list[dict], size: int | None, seed: int) -> list[dict]:
    """``size`` records chosen by ``seed`` (all when None), kept in their original order.

    Records are ranked by sha256(seed, id), so the choice depends only on content and seed.
    """
    if size is None:
        return list(records)
    if size > len(records):
        raise DataError(f"subsample size {size} exceeds the {len(records)} records available")
    rank = {r["id"]: hashlib.sha256(f"{seed}:{r['id']}".encode()).hexdigest() for r in records}
    chosen = set(sorted(rank, key=rank.__getitem__)[:size])
    return [r for r in records if r["id"] in chosen]


def build_scenario(data_cfg: DataConfig, scenario: str) -> list[dict]:
    """Training set of a scenario: ``high``, ``low`` or ``mixed`` (= high followed by low)."""
    if scenario not in SCENARIOS:
        raise DataError(f"unknown scenario '{scenario}'; expected {', '.join(SCENARIOS)}")
    records: list[dict] = []
    for part in SCENARIO_SLICES[scenario]:
        slice_ = getattr(data_cfg, part)
        records += subsample(
            load_records(slice_.dataset, slice_.split, data_cfg.mirror), slice_.size, data_cfg.seed
        )
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise DataError(f"scenario '{scenario}': the high and low slices share records (duplicate ids)")
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print normalised records of a registered dataset.")
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--split", required=True)
    parser.add_argument("--size", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mirror", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    records = subsample(load_records(args.dataset, args.split, args.mirror), args.size, args.seed)
    print(json.dumps(records, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
