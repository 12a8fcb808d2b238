"""Accuracy with a percentile-bootstrap 95 % interval over items (fixed seed, so reruns print the same CI).

Inputs: a sequence of per-item booleans. Outputs: {accuracy, ci_low, ci_high, n, n_correct,
bootstrap_resamples, bootstrap_seed}: the accuracy (named by the metrics file's ``metric``) and its 2.5 / 97.5
percentiles over 10,000 bootstrap resamples of the items (``ual.stats``), fractions in [0, 1].
Used by the GSM8K and MATH tasks of ``ual.tasks`` (both metrics of MATH); ``write_items`` stores the per-item
records as JSONL beside the metrics file (``<metrics stem>.items.jsonl``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ual.provenance import write_text_atomic
from ual.stats import bootstrap_indices, percentile_interval

logger = logging.getLogger(__name__)

__all__ = ["BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "accuracy_with_ci", "items_path", "write_items"]

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
TAIL = 0.025  # the 2.5 / 97.5 percentiles


def accuracy_with_ci(
    correct: Sequence[bool], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> dict[str, float | int]:
    """Mean of ``correct`` and its 2.5 / 97.5 percentiles over ``resamples`` bootstrap resamples of the items.

    >>> accuracy_with_ci([True, True, False, True])["accuracy"]
    0.75
    >>> accuracy_with_ci([True] * 5)["ci_low"]
    1.0
    """
    values = np.asarray(correct, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("accuracy_with_ci needs a non-empty 1-D sequence of per-item results")
    # Blocks of 1,000 resamples keep 10,000 x n small in memory for the 5,000-item MATH test set.
    draws = bootstrap_indices(values.size, resamples, seed)
    means = np.concatenate([values[index].mean(axis=1) for index in draws])
    ci = percentile_interval(values.mean(), means, TAIL)
    return {
        "accuracy": ci["value"],
        "ci_low": ci["ci_low"],
        "ci_high": ci["ci_high"],
        "n": int(values.size),
        "n_correct": int(values.sum()),
        "bootstrap_resamples": resamples,
        "bootstrap_seed": seed,
    }


def items_path(metrics_path: Path) -> Path:
    """Where the per-item records of a metrics file live: ``metrics.json`` -> ``metrics.items.jsonl``."""
    return Path(metrics_path).with_suffix(".items.jsonl")


def write_items(path: Path, items: list[dict]) -> None:
    """Write per-item records as JSONL, atomically."""
    write_text_atomic(path, "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items))
