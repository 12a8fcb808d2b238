"""The score record, and the scores file's one reader and one writer (``results/<exp>/elicit/scores.jsonl``).

A score record (one JSON object per line, the same schema in the scores file and in the elicitation cache):

    key          sha256 of (sample id, prompt version, elicitor, scorer)       (ual.elicit.core.cache_key)
    id, dataset  the sample's content hash and dataset name                    (ual.data)
    prompt_version, elicitor, source, scorer   what produced the score: source is the uncertainty source
                 ("verbalized" or "entropy")                                    (ual.elicit.core)
    raw          the reply text ("" where nothing was generated)
    score        verbalized: expected score in [1, 10]; entropy: mean token entropy in nats (>= 0);
                 null if missing
    uncertainty  in [0, 1]: verbalized (score - 1) / 9; entropy: min-max normalised over the training set
                 (null in the cache, which holds raw entropies); null if missing
    missing      true iff score is null
    read_from    "logprobs" (API top_logprobs), "logits" (hf), "text" (parsed reply), "entropy", or null
    probs        answer "1".."10" -> probability as read (not renormalised), or null; answer_mass = their sum
    requests     HTTP requests made for the sample (0 for local models);  seconds, cost_usd
    error        why the request failed after its retries (never cached), else null
    token_entropy  per-token scorers only (``entropy/per-token/...``): the entropy (nats) at each response
                 token of the target tokenizer; absent otherwise

Reading validates every line (strict types: ``true`` is not a number; ranges; missing iff score is null;
verbalized uncertainty = (score - 1) / 9) and, for the scores file, unique ids and the expected
provenance; every error names the file and the line. ``read_scores`` is the reader ``ual.smoothing`` and
``ual.report`` use; ``write_scores`` (atomic) is the only writer. A record written before the uncertainty
source was named ``source`` (``method``, with ``source`` for what is now ``read_from``) is read as the new
one, so existing caches stay valid (``upgrade_record``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ual.provenance import write_text_atomic

__all__ = ["RecordError", "ScoreRecord", "parse_record", "read_scores", "upgrade_record", "write_scores"]


class RecordError(ValueError):
    """A score record that fails validation; the message names the file and the line."""


class ScoreRecord(BaseModel):
    """One elicited score (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    key: str = Field(min_length=1)
    id: str = Field(min_length=1)
    dataset: str
    prompt_version: str
    elicitor: str
    source: Literal["verbalized", "entropy"]
    scorer: str
    raw: str
    score: float | None
    uncertainty: float | None = Field(ge=0.0, le=1.0)
    missing: bool
    read_from: Literal["logprobs", "logits", "text", "entropy"] | None
    probs: dict[str, float] | None
    answer_mass: float | None = Field(ge=0.0)
    requests: int = Field(ge=0)
    seconds: float = Field(ge=0.0)
    cost_usd: float = Field(ge=0.0)
    error: str | None
    token_entropy: list[float] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ScoreRecord:
        if self.missing != (self.score is None):
            raise ValueError(f"missing is {self.missing} but score is {self.score}")
        if self.score is None and self.uncertainty is not None:
            raise ValueError("a missing score has no uncertainty")
        if self.source == "verbalized" and self.score is not None:
            if not 1.0 <= self.score <= 10.0:
                raise ValueError(f"verbalized score {self.score} outside [1, 10]")
            if self.uncertainty is None or not math.isclose(
                self.uncertainty, (self.score - 1.0) / 9.0, abs_tol=1e-9
            ):
                raise ValueError(
                    f"uncertainty {self.uncertainty} is not (score - 1) / 9 for score {self.score}"
                )
        if self.source == "entropy" and self.score is not None and self.score < 0:
            raise ValueError(f"entropy {self.score} is negative")
        if any(value < 0 for value in self.token_entropy or ()):
            raise ValueError("token_entropy holds a negative entropy")
        per_token = self.scorer.startswith("entropy/per-token") and not self.missing
        if (self.token_entropy is not None) != per_token:
            raise ValueError("token_entropy is present iff a per-token scorer scored the sample")
        for answer, probability in (self.probs or {}).items():
            if not 0.0 <= probability <= 1.0 + 1e-6:
                raise ValueError(f"probs[{answer!r}] = {probability} is not a probability")
        return self


def _dump(record: ScoreRecord) -> dict:
    """The record as a dict; ``token_entropy`` only where a per-token scorer set it."""
    return record.model_dump(exclude={"token_entropy"} if record.token_entropy is None else None)


def upgrade_record(data: dict) -> dict:
    """A record of the earlier schema (``method`` the uncertainty source, ``source`` what it was read from) in
    the current one; a current record unchanged."""
    if "method" not in data or "read_from" in data:
        return data
    upgraded = {k: v for k, v in data.items() if k not in ("method", "source")}
    return upgraded | {"source": data["method"], "read_from": data.get("source")}


def parse_record(line: str, path: str | Path, number: int) -> dict:
    """One validated record from a JSONL line (``number`` counts lines from 1, blank ones included)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: line {number}: expected a JSON object, got {type(data).__name__}")
    try:
        return _dump(ScoreRecord.model_validate(upgrade_record(data)))
    except ValidationError as exc:
        problems = "; ".join(
            (f"'{'.'.join(str(p) for p in err['loc'])}': " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise RecordError(f"{path}: line {number}: not a valid score record: {problems}") from None


def read_scores(path: str | Path, expected: dict[str, str] | None = None) -> list[dict]:
    """Validated records of a scores file in file order.

    Args:
        path: ``scores.jsonl`` written by ``write_scores``.
        expected: fields every record must carry with these values (``ual.elicit.scores_identity(cfg)``),
            so a stale file from another elicitor, prompt or source is refused, not mapped silently.

    Raises:
        RecordError: naming the file and line of an invalid record, a duplicate id (with the line of its
            first occurrence), a provenance mismatch, or a scored record without an uncertainty.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows, first_line = [], {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        row = parse_record(line, path, number)
        if row["id"] in first_line:
            raise RecordError(
                f"{path}: line {number}: duplicate id {row['id']!r} (first on line {first_line[row['id']]})"
            )
        first_line[row["id"]] = number
        for key, value in (expected or {}).items():
            if row[key] != value:
                raise RecordError(
                    f"{path}: line {number}: {key} is {row[key]!r} but the experiment's is {value!r}"
                )
        if not row["missing"] and row["uncertainty"] is None:
            raise RecordError(f"{path}: line {number}: a scored record without an uncertainty")
        rows.append(row)
    return rows


def write_scores(path: str | Path, rows: Iterable[dict]) -> None:
    """Write validated records atomically as JSONL (the scores file's only writer)."""
    lines = []
    for number, row in enumerate(rows, start=1):
        try:
            record = ScoreRecord.model_validate(row)
        except ValidationError as exc:  # a bug upstream: never write a file the reader would refuse
            raise RecordError(f"{path}: record {number} is invalid: {exc}") from None
        if not record.missing and record.uncertainty is None:
            raise RecordError(f"{path}: record {number} ({record.id}) is scored but has no uncertainty")
        lines.append(json.dumps(_dump(record), ensure_ascii=False) + "\n")
    write_text_atomic(path, "".join(lines))
