"""Any dataset as elicitation records: JSONL / JSON / Parquet files or a hub dataset, in one of three formats.

``read_rows(source, split)`` reads the rows (a hub id, anything that is not an existing file, goes through
``datasets.load_dataset``); ``to_records(rows, columns, name)`` turns each row into the record the elicitor
scores (``id``, ``dataset``, ``instruction``, ``input``, ``output``), by the first format whose columns the
rows have:

- ``messages`` (chat): the last assistant message is the output, the user message before it the
  instruction, earlier turns (if any) the input, one "role: content" line each;
- ``prompt`` / ``completion`` (strings, or message lists as TRL accepts them): instruction and output;
- ``instruction`` / ``output`` (+ optional ``input``): the Alpaca format of the paper.

Then ``score_records`` (the one scoring path of the pipeline and of ``--input``) and ``scored_rows`` (the
rows plus ``uncertainty`` and ``epsilon``); ``elicit_dataset`` does all of it in memory (``from ual import
elicit_dataset``). Column names are flags of ``python -m ual.elicit`` (``ColumnNames``). Rows matching none
raise
``DatasetFormatError`` listing the columns found and those flags. The record id is
``ual.data.normalise.record_id`` of its content, with ``name`` as the dataset, so the cache serves a rerun.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ual.data.normalise import record_id
from ual.elicit.cache import ScoreCache
from ual.elicit.core import cache_path
from ual.elicit.registry import build_elicitor
from ual.elicit.run import RunStats, elicit_scores

__all__ = [
    "ColumnNames",
    "DatasetFormatError",
    "dataset_name",
    "elicit_config",
    "elicit_dataset",
    "output_text",
    "read_rows",
    "score_records",
    "scored_rows",
    "to_records",
]


class DatasetFormatError(ValueError):
    """An input dataset that cannot be read or whose columns match no known format."""


@dataclass(frozen=True)
class ColumnNames:
    """The column of each role (flags ``--<role>-column``)."""

    instruction: str = "instruction"
    input: str = "input"
    output: str = "output"
    prompt: str = "prompt"
    completion: str = "completion"
    messages: str = "messages"

    def formats(self) -> str:
        return (
            f"chat '{self.messages}' (--messages-column), '{self.prompt}' + '{self.completion}' "
            f"(--prompt-column, --completion-column), or '{self.instruction}' + '{self.output}' [+ "
            f"'{self.input}'] (--instruction-column, --output-column, --input-column)"
        )


def dataset_name(source: str) -> str:
    """The ``dataset`` field of the records of ``source``: a file's stem, else the hub id."""
    path = Path(source)
    return path.stem if path.is_file() else source


def _read_file(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetFormatError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
        return rows
    if suffix == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise DatasetFormatError(f"{path}: unknown file type '{suffix}'; expected .jsonl, .json or .parquet")


def read_rows(source: str, split: str = "train") -> list[dict]:
    """The rows of a file, or of split ``split`` of a hub dataset (anything that is not an existing file)."""
    path = Path(source)
    if path.is_file():
        rows = _read_file(path)
    else:
        import datasets

        try:
            rows = datasets.load_dataset(source, split=split).to_list()
        except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "not loadable"
            reason = str(exc).split("\n")[0]
            raise DatasetFormatError(
                f"{source!r} is not a file here and could not be loaded as a hub dataset (split {split!r}): "
                f"{type(exc).__name__}: {reason}"
            ) from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise DatasetFormatError(f"{source}: expected a list of JSON objects (one per sample)")
    if not rows:
        raise DatasetFormatError(f"{source}: no rows")
    return rows


def _text(messages: list[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def _from_messages(messages: Any) -> tuple[str, str, str]:
    if not isinstance(messages, list) or not messages or messages[-1].get("role") != "assistant":
        raise ValueError("the chat does not end with an assistant message")
    *before, answer = messages
    users = [i for i, m in enumerate(before) if m.get("role") == "user"]
    if not users:
        raise ValueError("the chat has no user message before its last assistant message")
    last = users[-1]
    context = before[:last] + before[last + 1 :]
    return before[last]["content"], _text(context), answer["content"]


def _content(value: Any) -> str:
    """A prompt or completion: a string, or a message list (TRL's conversational prompt-completion; one
    message: its content, the text the trained model's completion tokens spell)."""
    if isinstance(value, str):
        return value
    return value[0]["content"] if len(value) == 1 else _text(value)


def _format(columns: set[str], names: ColumnNames) -> str | None:
    if names.messages in columns:
        return "messages"
    if {names.prompt, names.completion} <= columns:
        return "prompt-completion"
    if {names.instruction, names.output} <= columns:
        return "instruction"
    return None


_ROW_ERRORS = (KeyError, TypeError, ValueError, AttributeError)  # a row without its format's columns


def _fields(row: dict, kind: str, names: ColumnNames) -> tuple[str, str, str]:
    """(instruction, input, output) of one row of format ``kind`` (``_format``)."""
    if kind == "messages":
        return _from_messages(row[names.messages])
    if kind == "prompt-completion":
        return _content(row[names.prompt]), "", _content(row[names.completion])
    return row[names.instruction], row.get(names.input) or "", row[names.output]


def output_text(row: dict, names: ColumnNames = ColumnNames()) -> str | None:
    """The text of a row's output as ``to_records`` scores it, or None where the row has none (the text
    ``UALSFTTrainer`` looks for among a sample's completion tokens)."""
    kind = _format(set(row), names)
    try:
        return _fields(row, kind, names)[2] if kind is not None else None
    except _ROW_ERRORS:
        return None


def to_records(rows: list[dict], names: ColumnNames, name: str, source: str) -> list[dict]:
    """One elicitation record per row, in row order (see the module docstring).

    Raises:
        DatasetFormatError: the columns of the first row match no format (listing them and the flags), or a
            row lacks its format's columns or has a bad chat (naming the row).
    """
    columns = set(rows[0])
    kind = _format(columns, names)
    if kind is None:
        raise DatasetFormatError(
            f"{source}: columns {sorted(columns)} match no known format; expected {names.formats()}"
        )
    records = []
    for number, row in enumerate(rows):
        try:
            instruction, context, output = _fields(row, kind, names)
        except _ROW_ERRORS as exc:
            raise DatasetFormatError(
                f"{source}: row {number} ({kind} format): {type(exc).__name__}: {exc}"
            ) from None
        records.append(
            {
                "id": record_id(name, instruction, context, output),
                "dataset": name,
                "instruction": instruction,
                "input": context,
                "output": output,
            }
        )
    return records


def score_records(
    records: list[dict], cfg: Any, cache_file: Path | None = None, progress: bool = True
) -> tuple[list[dict], RunStats, dict, ScoreCache]:
    """Score records with the elicitor of ``cfg`` through its cache: (scores, stats, normaliser, cache).

    The one code path of both modes; an entropy source is min-max normalised over ``records``.
    """
    cache = ScoreCache(cache_file or cache_path(cfg))
    rows, stats = elicit_scores(records, build_elicitor(cfg), cache, cfg.prompt_version, progress)
    normaliser: dict = {}
    if cfg.method == "entropy":  # uncertainty relative to this training set
        from ual.elicit.entropy import normalise_entropy

        rows, normaliser = normalise_entropy(rows)
    return rows, stats, normaliser, cache


def scored_rows(
    rows: list[dict], scores: list[dict], on_missing: str, eps: tuple[float, float] | None
) -> list[dict]:
    """The input rows plus ``uncertainty`` (a missing one: the median, or null), and ``epsilon`` (``eps``);
    per token (scores with ``token_uncertainty``) each is a list, one value per completion token."""
    from ual.epsilon import score_to_epsilon

    present = [s["uncertainty"] for s in scores if s["uncertainty"] is not None]
    median = statistics.median(present) if present and on_missing == "median" else None
    out = []
    for row, score in zip(rows, scores, strict=True):
        uncertainty = score.get("token_uncertainty", score["uncertainty"])
        uncertainty = median if uncertainty is None else uncertainty
        extra = {"uncertainty": uncertainty}
        if eps is not None:
            if isinstance(uncertainty, list):
                extra["epsilon"] = [score_to_epsilon(u, *eps) for u in uncertainty]
            else:
                extra["epsilon"] = None if uncertainty is None else score_to_epsilon(uncertainty, *eps)
        out.append({**row, **extra})
    return out


def elicit_config(
    backend: str, model: str, source: str = "verbalized", on_missing: str = "fail", **settings: Any
):
    """An ``ElicitConfig`` outside any experiment (``prompt_version`` v1 unless given; others: defaults)."""
    from ual.config import ElicitConfig

    settings = {"prompt_version": "v1", **{k: v for k, v in settings.items() if v is not None}}
    return ElicitConfig(backend=backend, model=model, method=source, on_missing=on_missing, **settings)


def elicit_dataset(
    rows: list[dict],
    backend: str,
    model: str,
    *,
    eps_max: float | None = None,
    eps_min: float = 0.0,
    source: str = "verbalized",
    on_missing: str = "fail",
    columns: ColumnNames = ColumnNames(),
    name: str = "dataset",
    cache: str | Path | None = None,
    progress: bool = False,
    **settings: Any,
) -> list[dict]:
    """Score ``rows`` (any of the three formats) and return them plus ``uncertainty`` (and ``epsilon``).

    Args:
        rows: the samples, e.g. ``datasets.Dataset.to_list()``.
        backend, model: "openai" (with ``base_url=`` for a local server, or ``api_key_env=``) or "hf".
        eps_max, eps_min: also add ``epsilon = eps_min + (eps_max - eps_min) * uncertainty``.
        source: "verbalized" (the paper) or "entropy" (hf only); with ``per_token=True`` (entropy) each
            row's ``uncertainty``/``epsilon`` is a list over its completion tokens under ``target_tokenizer``
            (default: the elicitor's), for ``UALSFTTrainer``.
        on_missing: "fail" (ValueError naming the count) or "median" (a missing sample gets the median).
        columns, name: column names (``ColumnNames``) and the dataset name in the record ids.
        cache: cache file (default: in ``cache_dir``); settings: further ``ElicitConfig`` fields.

    Example::

        scored = elicit_dataset(dataset.to_list(), "openai", "served", base_url="http://127.0.0.1:8080/v1",
                                eps_max=0.2)
    """
    cfg = elicit_config(backend, model, source=source, on_missing=on_missing, **settings)
    records = to_records(rows, columns, name, name)
    scores, stats, _, _ = score_records(records, cfg, Path(cache) if cache else None, progress)
    if stats.missing and on_missing == "fail":
        raise ValueError(
            f"{stats.missing} of {len(rows)} samples could not be scored (first errors: "
            f"{stats.failures}); pass on_missing='median' to give them the median uncertainty"
        )
    return scored_rows(rows, scores, on_missing, (eps_min, eps_max) if eps_max is not None else None)
