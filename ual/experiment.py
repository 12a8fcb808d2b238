"""Load an experiment file: YAML -> a frozen ``ual.config.Experiment``, every name checked by its registry.

Inputs: ``experiments/<name>.yaml`` (``experiments/README.md`` gives every key and its source).
Outputs: an ``Experiment`` (``load_experiment``), or a ``ConfigError`` naming the file and, for each problem,
the dotted key: a YAML syntax error (file, line and column), an unknown key (with the keys known there), a
wrong type, a missing required key, a repeated list entry, or a name no registry knows, with the names it
knows: methods (``ual.methods.METHODS``), tasks (``ual.tasks.TASKS``: ``evaluate.tasks``, the keys of
``evaluate.sizes``, ``evaluate.max_new_tokens`` and ``analysis.calibration.sizes``), datasets and their
splits (``ual.data.DATASETS``), model sources (``ual.models.check_source``: ``package:`` names, local
folders; a hub id may leave ``revision`` null, then it means the latest commit; an API model name of an
OpenAI-compatible elicitor or judge passes), resource stages (the keys of ``resources``). The judge is
checked apart (``check_judge``): ``ual.judges`` imports alpaca_eval and torch (5-10 s), which every stage
would pay.

This module sits above the registries it checks and is the only place that parses experiment YAML;
``ual.config`` is the schema and imports none of them (it receives the checks as pydantic's validation
context, ``ual.config.NAME_KINDS``).

    python -m ual.experiment experiments/tiny.yaml     # validate (judge included), print it resolved
    python -m ual.experiment --schema > workflow/schemas/experiment.schema.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ual.config import JSON_SCHEMA_KEY, ConfigError, Experiment, resolved_config
from ual.data import DATASETS
from ual.methods import METHODS
from ual.models import check_source
from ual.tasks import TASKS

__all__ = ["ConfigError", "check_judge", "experiment_json_schema", "load_experiment", "main"]


def _known(kind: str, names: Iterable[str]) -> Callable[[str], None]:
    """The check of a name of one registry: a ValueError naming the known names. The registry is read at
    each check, so a name registered later (a new task, a test's toy task) is known."""

    def check(name: str) -> None:
        if name not in names:
            raise ValueError(f"unknown {kind} '{name}'; known {kind}s: {', '.join(sorted(names))}")

    return check


def _known_split(dataset: str, split: str) -> None:
    splits = DATASETS.get(dataset, {})  # an unknown dataset is reported on its own
    if splits and split not in splits:
        known = ", ".join(sorted(splits))
        raise ValueError(f"dataset '{dataset}' has no split '{split}'; its splits: {known}")


def _known_model_if_ual(source: str) -> None:
    """A name in ual's own notation (``package:`` or a local path) is checked; API model names pass."""
    if source.startswith(("package:", ".", "/")):
        check_source(source)


# The validation context of ual.config: a check for every kind of registry name (ual.config.NAME_KINDS).
NAME_CHECKS: dict[str, Callable[..., None]] = {
    "method": _known("method", METHODS),
    "task": _known("task", TASKS),
    "dataset": _known("dataset", DATASETS),
    "split": _known_split,
    "model": check_source,
    "api_model": _known_model_if_ual,
}
# The names the JSON Schema lists for the fields ual.config marks with JSON_SCHEMA_KEY.
SCHEMA_NAMES: dict[str, list[str]] = {"method": list(METHODS), "task": sorted(TASKS)}


# PyYAML follows YAML 1.1, where "2e-5" (no dot) is a *string*; learning rates are written that way
# everywhere, so resolve floats with the YAML 1.2 pattern instead of failing on a valid file.
class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _known_keys(loc: tuple) -> list[str]:
    """The keys of the section that holds ``loc`` (a path of section names ending in the key)."""
    section: type[BaseModel] = Experiment
    for part in loc[:-1]:
        field = section.model_fields.get(part)
        inner = field.annotation if field is not None else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        section = inner
    return sorted(key for key in section.model_fields if not (section is Experiment and key == "name"))


def _format_error(path: Path, error: dict[str, Any]) -> str:
    # a bad mapping key (e.g. a task name in evaluate.sizes) is located as (..., key, "[key]")
    key = ".".join(str(part) for part in error["loc"] if part != "[key]") or "<top level>"
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(error["loc"])
        return f"{path}: unknown key '{key}'" + (f"; known keys: {', '.join(known)}" if known else "")
    if kind == "missing":
        return f"{path}: missing required key '{key}'"
    return f"{path}: key '{key}': {error['msg']} (got {error['input']!r})"


def _yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """``file:line:column: not valid YAML: what`` (PyYAML's marks count from 0)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    parts = (getattr(exc, "context", None), getattr(exc, "problem", None))
    problem = " ".join(str(part) for part in parts if part)
    return f"{where}: not valid YAML: {problem or exc}"


def load_experiment(path: str | Path) -> Experiment:
    """Load and validate ``experiments/<name>.yaml``.

    Raises:
        ConfigError: the file is missing, is not UTF-8 or YAML (file, line and column), is not a mapping,
            or has an unknown key, a wrong type, a missing required key, a name no registry knows (dataset,
            split, model, task, method, scenario, elicitor backend, resource stage) or a repeated list entry;
            every problem is listed with the file and the dotted key. The judge is checked by ``check_judge``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start}: {exc.reason})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_error(path, exc)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    if "name" in raw:
        raise ConfigError(f"{path}: key 'name' is taken from the file name and must not be set")
    try:
        return Experiment.model_validate({"name": path.stem, **raw}, context=NAME_CHECKS)
    except ValidationError as exc:
        lines = [_format_error(path, err) for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def check_judge(experiment: Experiment, path: str | Path) -> None:
    """Raise ``ConfigError`` unless ``evaluate.judge`` names an annotator config of ``ual.judges``.

    Not part of ``load_experiment``: ``ual.judges`` imports alpaca_eval and torch (5-10 s), which every stage
    would pay. ``python -m ual.experiment`` and the workflow (at DAG construction, so ``snakemake -n``) call
    it.
    """
    import warnings

    with warnings.catch_warnings():  # alpaca_eval 0.6.6 warns that pkg_resources is deprecated
        warnings.simplefilter("ignore", UserWarning)
        from ual.judges import ANNOTATORS_DIR, JUDGE_ALIASES, STOCK_ANNOTATORS_DIR, AlpacaEvalError
        from ual.judges import find_annotator_config

    judge = experiment.evaluate.judge
    try:
        find_annotator_config(judge)
    except AlpacaEvalError:
        folders = (ANNOTATORS_DIR, STOCK_ANNOTATORS_DIR)
        known = sorted({*JUDGE_ALIASES, *(c.parent.name for f in folders for c in f.glob("*/configs.yaml"))})
        raise ConfigError(
            f"{path}: key 'evaluate.judge': unknown judge '{judge}' (an annotator folder or one of: "
            f"{', '.join(known)})"
        ) from None


def _list_names(node: Any) -> None:
    """Replace every JSON_SCHEMA_KEY mark of ``node`` (in place) by the registry's names as an ``enum``."""
    if isinstance(node, dict):
        if JSON_SCHEMA_KEY in node:
            node["enum"] = SCHEMA_NAMES[node.pop(JSON_SCHEMA_KEY)]
        for value in node.values():
            _list_names(value)
    elif isinstance(node, list):
        for value in node:
            _list_names(value)


def experiment_json_schema() -> dict[str, Any]:
    """JSON Schema of an experiment file (``workflow/schemas/experiment.schema.json`` is this, exported);
    method and task names are listed as enums."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Experiment.model_json_schema()}
    schema["properties"].pop("name")  # taken from the file stem, never written in the file
    schema["required"] = [key for key in schema["required"] if key != "name"]
    _list_names(schema)
    return schema


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ual.experiment", description="Validate an experiment file and print it resolved."
    )
    parser.add_argument("experiment", type=Path, nargs="?")
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema of experiment files")
    args = parser.parse_args(argv)
    if args.schema:
        print(json.dumps(experiment_json_schema(), indent=2, sort_keys=True))
        return
    if args.experiment is None:
        parser.error("give an experiment file or --schema")
    try:
        experiment = load_experiment(args.experiment)
        check_judge(experiment, args.experiment)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(resolved_config(experiment), indent=2))


if __name__ == "__main__":
    main()
