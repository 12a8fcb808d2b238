"""The statistics every stage reports: interval records, bootstrap resampling, paired differences, summaries.

- ``interval(value, low, high)``: the one interval record ``{"value", "ci_low", "ci_high"}`` of every result
  file (evaluation accuracies, calibration and clustering metrics, their differences).
- ``bootstrap_indices`` / ``stratified_indices``: the resampling of items (with replacement; all of them, or
  within each stratum), from one ``numpy.random.default_rng(seed)``; the draws do not depend on the block size.
- ``percentile_interval`` (the ``tail`` and ``1 - tail`` quantiles of the replicates) and ``normal_interval``
  (``value +- z * std(replicates)``, with the replicates' mean and std beside it): an interval from the
  bootstrap replicates of a statistic.
- ``paired_differences``: ``model - reference`` of every metric, the replicates differenced replicate by
  replicate (both models resampled identically), summarised by the caller's interval.
- ``paired_mean_difference``: the mean of per-item differences ``a - b`` with the percentile interval of a
  bootstrap over items (a paired comparison of two models on the same items, e.g. instructions).
- ``describe``: n, mean, sd and quantiles of a sample (the descriptive summary of a score or epsilon column).

Pure numpy, no I/O; imports nothing of ``ual``. Used by ``ual.tasks.accuracy``, ``ual.analysis.calibration``,
``ual.analysis.metrics`` and ``ual.analysis.clustering``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from statistics import NormalDist

import numpy as np

__all__ = [
    "CONFIDENCE",
    "QUANTILES",
    "bootstrap_indices",
    "describe",
    "interval",
    "normal_interval",
    "paired_differences",
    "paired_mean_difference",
    "percentile_bounds",
    "percentile_interval",
    "stratified_indices",
    "tail_probability",
]

CONFIDENCE = 0.95
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)  # the quantiles of ``describe``
BLOCK = 1000  # resamples drawn at a time (memory only: the draws are the same for any block size)


def interval(value: float, low: float | None, high: float | None) -> dict[str, float | None]:
    """The interval record of every result file.

    >>> interval(0.5, 0.25, 0.75)
    {'value': 0.5, 'ci_low': 0.25, 'ci_high': 0.75}
    """
    as_float = (lambda x: None if x is None else float(x))
    return {"value": float(value), "ci_low": as_float(low), "ci_high": as_float(high)}


def tail_probability(confidence: float = CONFIDENCE) -> float:
    """The probability below a two-sided interval of ``confidence``: ``(1 - confidence) / 2``."""
    return (1.0 - confidence) / 2.0


def bootstrap_indices(n: int, resamples: int, seed: int, block: int = BLOCK) -> Iterator[np.ndarray]:
    """``resamples`` rows of ``n`` item indices drawn with replacement, in (<= ``block``, n) arrays.

    One ``default_rng(seed)`` draws them all, so any ``block`` gives the same rows (it bounds memory only).
    """
    if n < 1 or resamples < 1:
        raise ValueError(f"need at least one item and one resample, got {n} and {resamples}")
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, block):
        yield rng.integers(0, n, size=(min(block, resamples - start), n))


def stratified_indices(strata: Sequence[np.ndarray], resamples: int, seed: int) -> Iterator[np.ndarray]:
    """``resamples`` replicates, each every stratum (an array of item indices) resampled with replacement
    within itself, strata concatenated in order; one ``default_rng(seed)`` draws them all."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield np.concatenate([rng.choice(stratum, size=len(stratum), replace=True) for stratum in strata])


def percentile_bounds(replicates: np.ndarray, tail: float) -> tuple[float, float]:
    """The ``tail`` and ``1 - tail`` quantiles of the replicates (numpy's linear interpolation)."""
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


def percentile_interval(point: float, replicates: np.ndarray, tail: float) -> dict[str, float | None]:
    """``point`` with the percentile interval of its bootstrap ``replicates`` (``percentile_bounds``).

    >>> percentile_interval(2.0, np.arange(101.0), tail=0.025)
    {'value': 2.0, 'ci_low': 2.5, 'ci_high': 97.5}
    """
    return interval(point, *percentile_bounds(replicates, tail))


def normal_interval(point: float, replicates: np.ndarray, confidence: float = CONFIDENCE) -> dict[str, float]:
    """``point +- z * std(replicates)`` (``z`` of the two-sided ``confidence``), with the replicates' mean
    (``bootstrap_mean``: shows a bias of the statistic) and std (``bootstrap_std``).

    >>> round(normal_interval(1.0, np.array([0.0, 2.0]), confidence=0.95)["ci_high"], 4)  # 1 + 1.96 * std 1
    2.96
    """
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    std = float(np.std(replicates))
    return {**interval(point, point - z * std, point + z * std),
            "bootstrap_mean": float(np.mean(replicates)), "bootstrap_std": std}


def paired_differences(
    points: Mapping[str, Mapping[str, float]],
    replicates: Mapping[str, Mapping[str, np.ndarray]],
    reference: str,
    summary: Callable[[float, np.ndarray], dict[str, float | None]],
) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{model: {metric: summary(point - reference's point, replicates - reference's replicates)}}`` for every
    model but ``reference``, in ``points`` order.

    ``points[model][metric]`` is a statistic and ``replicates[model][metric]`` its bootstrap replicates; the
    replicates of all models must come from the same resampled items (a paired bootstrap), which the caller
    checks. Identical models give exactly 0 with a zero-width interval.
    """
    if reference not in points:
        raise KeyError(f"reference model '{reference}' not among {sorted(points)}")
    base, base_replicates = points[reference], replicates[reference]
    return {
        name: {
            metric: summary(values[metric] - base[metric], replicates[name][metric] - base_replicates[metric])
            for metric in base
        }
        for name, values in points.items()
        if name != reference
    }


def paired_mean_difference(
    a: Sequence[float], b: Sequence[float], resamples: int, seed: int, confidence: float = CONFIDENCE
) -> dict[str, float | int | None]:
    """``mean(a - b)`` over paired items with the percentile interval of a bootstrap over items
    (``bootstrap_indices``), and ``n``. Identical inputs give exactly 0 with a zero-width interval.

    >>> paired_mean_difference([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], resamples=50, seed=0)
    {'value': 1.0, 'ci_low': 1.0, 'ci_high': 1.0, 'n': 3}
    """
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(f"paired items must match one to one, got {first.shape} and {second.shape}")
    if not np.isfinite(first).all() or not np.isfinite(second).all():
        raise ValueError("paired items must be finite (drop the unpaired ones first)")
    differences = first - second
    replicates = np.concatenate([differences[rows].mean(axis=1)
                                 for rows in bootstrap_indices(len(differences), resamples, seed)])
    return {**percentile_interval(float(differences.mean()), replicates, tail_probability(confidence)),
            "n": len(differences)}


def describe(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, sample sd (ddof=1; None for one value), min, max and the quantiles ``QUANTILES`` (q05..q95).

    >>> describe([1.0, 2.0, 3.0])["q50"], describe([])
    (2.0, {'n': 0})
    """
    array = np.asarray(values, dtype=float)
    if len(array) == 0:
        return {"n": 0}
    stats: dict[str, float | int | None] = {
        "n": len(array),
        "mean": float(array.mean()),
        "sd": float(array.std(ddof=1)) if len(array) > 1 else None,
        "min": float(array.min()),
        "max": float(array.max()),
    }
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = float(np.quantile(array, q))
    return stats
