"""What a result is: ``{experiment, scenario, variant, seed}``, carried inside every result JSON.

Every stage that writes a result (training metrics, generations' metadata, evaluation metrics, analysis
results, epsilon sidecars) takes its identity from the command line that made it (``--scenario``,
``--variant``, ``--seed``; the experiment's name from the experiment file) and writes it under the key
``identity``. Readers (``ual.report``) take identity only from there, never from a path. A field that does not
apply is null (the base model's analysis has no scenario, variant or seed). This module imports nothing of
``ual``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["IDENTITY_KEY", "Identity", "IdentityError", "add_identity_arguments", "read_identity"]

IDENTITY_KEY = "identity"


class IdentityError(ValueError):
    """A result file without a valid identity; the message names the file."""


class Identity(BaseModel):
    """The identity of one result."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    experiment: str
    scenario: str | None = None
    variant: str | None = None
    seed: int | None = None

    def as_record(self) -> dict[str, Any]:
        """The JSON object written under ``identity``."""
        return self.model_dump()


def add_identity_arguments(parser: argparse.ArgumentParser, *, scenario: bool = True, variant: bool = True,
                           seed: bool = True) -> None:
    """Add ``--scenario``, ``--variant`` and ``--seed`` (each optional) to a stage's parser."""
    if scenario:
        parser.add_argument("--scenario", default=None, help="training scenario of the result")
    if variant:
        parser.add_argument("--variant", default=None, help="trained variant (ual.variants) of the result")
    if seed:
        parser.add_argument("--seed", type=int, default=None, help="training seed of the result")


def read_identity(data: dict[str, Any], path: str | Path) -> Identity:
    """The identity recorded in a result file's JSON ``data``; an error naming ``path`` if absent or bad."""
    record = data.get(IDENTITY_KEY) if isinstance(data, dict) else None
    if record is None:
        raise IdentityError(f"{path}: result has no '{IDENTITY_KEY}' (rerun the stage that wrote it)")
    try:
        return Identity.model_validate(record)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise IdentityError(f"{path}: bad '{IDENTITY_KEY}' ({problems})") from None
