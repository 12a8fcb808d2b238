"""Teacher-forced likelihood and calibration of held-out reference answers, with paired bootstrap intervals.

Label smoothing changes how much probability a model puts on the reference token and how confident it is,
measurably at any scale and without generation. For every response token of a held-out reference (the
model fed the reference prefix, teacher forcing) with logits z over V classes and target y:

- ``nll`` = -log p_y (natural log; perplexity = exp of the token mean);
- ``entropy`` = -sum_v p_v log p_v of the predictive distribution (nats);
- ``confidence`` = max_v p_v (the top label's probability) and ``correct`` = [argmax_v p_v == y];
- ``brier`` = sum_v (p_v - [v == y])^2 (the multi-class Brier score, in [0, 2]).

Per model and task they aggregate to token means (every token of every sample weighs the same) and the
top-label expected calibration error with ``N_BINS`` = 15 equal-width confidence bins (scikit-learn's
``calibration_curve(strategy="uniform")`` binning: bin edges ``linspace(0, 1, 16)``, a confidence equal to
an inner edge goes to the lower bin): ECE = sum_b n_b / N * |acc_b - conf_b|.

Intervals resample **samples** (held-out references), not tokens, because the tokens of one answer are not
independent: each sample is reduced to sufficient statistics (token count, sums of the four quantities, and
per bin the token count, confidence sum and correct count), and a bootstrap replicate is a multinomial
re-weighting of the samples. Differences between two models (UAL - SFT, ...) are *paired*: both models are
scored on the very same tokens (same references, same tokenizer) and every replicate uses the same sample
weights for both, so the interval reflects the difference, not the spread of the references. Intervals are
percentile intervals of the replicates.

Inputs: logits (or last hidden states and the LM head) of response positions and their targets, and the
sample each token belongs to. Outputs: per-token arrays (``token_statistics``), per-sample statistics
(``SampleStatistics``), metric dicts (``calibration_metrics``), bootstrap intervals (``bootstrap_metrics``,
``paired_differences``) and reliability curves (``reliability_curve``) with per-bin accuracy intervals over
samples (``reliability_intervals``). Resampling, interval records and paired differences are
``ual.stats``'. Pure numpy / torch / scikit-learn, no I/O; the analysis stage (``python -m ual.analysis``)
computes them in its teacher-forced pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ual import stats as st

__all__ = [
    "CALIBRATION_VERSION",
    "CONFIDENCE",
    "METRICS",
    "N_BINS",
    "SampleStatistics",
    "bin_index",
    "bootstrap_metrics",
    "bootstrap_weights",
    "calibration_metrics",
    "head_token_statistics",
    "paired_differences",
    "reliability_curve",
    "reliability_intervals",
    "sample_statistics",
    "token_statistics",
]

CALIBRATION_VERSION = 1
N_BINS = 15
CONFIDENCE = st.CONFIDENCE
TOKEN_FIELDS = ("nll", "entropy", "confidence", "correct", "brier")
# metric -> higher is better
METRICS = {
    "nll": False,
    "perplexity": False,
    "entropy": None,  # neither: label smoothing raises it on purpose
    "accuracy": True,
    "confidence": None,
    "ece": False,
    "brier": False,
}


# --------------------------------------------------------------------------- per token


def token_statistics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, np.ndarray]:
    """The per-token quantities of the module docstring for logits (N, V) and targets (N,), as float64.

    >>> stats = token_statistics(torch.tensor([[math.log(3.0), 0.0]], dtype=torch.float64), torch.tensor([0]))
    >>> [round(float(stats[k][0]), 6) for k in ("nll", "confidence", "brier")]
    [0.287682, 0.75, 0.125]
    """
    if logits.dim() != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (N, V) and targets (N,), got {tuple(logits.shape)} and "
                         f"{tuple(targets.shape)}")
    if targets.numel() and (targets.min() < 0 or targets.max() >= logits.shape[1]):
        raise ValueError(f"targets must lie in [0, {logits.shape[1]}); got {targets.min()}..{targets.max()}")
    with torch.no_grad():
        logp = torch.log_softmax(logits.detach().double(), dim=-1)
        p = logp.exp()
        logp_y = logp.gather(1, targets[:, None].long()).squeeze(1)
        confidence, predicted = p.max(dim=-1)
        stats = {
            "nll": -logp_y,
            "entropy": -torch.xlogy(p, p).sum(-1),  # xlogy: 0 log 0 = 0 for underflowed classes
            "confidence": confidence,
            "correct": (predicted == targets).double(),
            "brier": (p * p).sum(-1) - 2.0 * logp_y.exp() + 1.0,
        }
    out = {name: value.cpu().numpy() for name, value in stats.items()}
    for name, value in out.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"token statistic '{name}' is not finite (logits hold NaN or inf)")
    return out


def head_token_statistics(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    chunk_size: int = 1024,
) -> dict[str, np.ndarray]:
    """``token_statistics`` of the logits ``hidden @ weight.T (+ bias)``, built ``chunk_size`` rows at a time.

    hidden (N, H) are the final hidden states at the positions that predict ``targets`` (N,); weight (V, H) is
    the LM head. Peak extra memory is one (chunk_size, V) block, never (N, V).
    """
    parts: dict[str, list[np.ndarray]] = {name: [] for name in TOKEN_FIELDS}
    with torch.no_grad():
        for start in range(0, hidden.shape[0], chunk_size):
            rows = hidden[start : start + chunk_size].to(weight.dtype)
            logits = rows @ weight.T
            if bias is not None:
                logits = logits + bias
            for name, value in token_statistics(logits, targets[start : start + chunk_size]).items():
                parts[name].append(value)
    return {
        name: np.concatenate(values) if values else np.zeros(0, dtype=np.float64) for name, values in parts.items()
    }


def bin_index(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width bin of each confidence, exactly as scikit-learn's ``calibration_curve(strategy="uniform")``.

    >>> bin_index(np.array([0.0, 0.5, 0.51, 1.0]), n_bins=2).tolist()
    [0, 0, 1, 1]
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], np.asarray(confidence, dtype=np.float64))


# --------------------------------------------------------------------------- per sample


@dataclass(frozen=True)
class SampleStatistics:
    """Sufficient statistics of each held-out sample (S samples, B bins); float64 arrays."""

    n_tokens: np.ndarray  # (S,)
    sums: dict[str, np.ndarray]  # TOKEN_FIELDS -> (S,) sums over the sample's tokens
    bin_count: np.ndarray  # (S, B) tokens per confidence bin
    bin_confidence: np.ndarray  # (S, B) summed confidence per bin
    bin_correct: np.ndarray  # (S, B) correct top-1 predictions per bin

    @property
    def n_samples(self) -> int:
        return len(self.n_tokens)


def sample_statistics(
    tokens: Mapping[str, np.ndarray], sample_index: np.ndarray, n_samples: int, n_bins: int = N_BINS
) -> SampleStatistics:
    """Reduce per-token arrays (``token_statistics``) to per-sample sums; ``sample_index`` (N,) in [0, S).

    A sample without any token keeps zeros (it still counts in the bootstrap with weight 0 tokens), so a
    caller must not pass references whose answer was truncated away without saying so.
    """
    sample_index = np.asarray(sample_index, dtype=np.int64)
    n = len(sample_index)
    for name in TOKEN_FIELDS:
        if np.shape(tokens[name]) != (n,):
            raise ValueError(f"token statistic '{name}' has shape {np.shape(tokens[name])}, expected ({n},)")
    if n and (sample_index.min() < 0 or sample_index.max() >= n_samples):
        raise ValueError(f"sample_index must lie in [0, {n_samples})")
    bins = bin_index(tokens["confidence"], n_bins)
    flat = sample_index * n_bins + bins

    def per_bin(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(flat, weights=weights, minlength=n_samples * n_bins).reshape(n_samples, n_bins)

    return SampleStatistics(
        n_tokens=np.bincount(sample_index, minlength=n_samples).astype(np.float64),
        sums={
            name: np.bincount(sample_index, weights=tokens[name], minlength=n_samples) for name in TOKEN_FIELDS
        },
        bin_count=per_bin(None).astype(np.float64),
        bin_confidence=per_bin(np.asarray(tokens["confidence"], dtype=np.float64)),
        bin_correct=per_bin(np.asarray(tokens["correct"], dtype=np.float64)),
    )


def calibration_metrics(stats: SampleStatistics, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Token-mean metrics and ECE; ``weights`` (S,) or (R, S) re-weight the samples (bootstrap replicates).

    Returns arrays of shape () for ``weights=None`` or (S,) weights, (R,) for (R, S) weights.
    """
    w = np.ones(stats.n_samples) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w @ stats.n_tokens
    if np.any(total <= 0):
        raise ValueError("no response token to score (every sample is empty or has weight 0)")
    means = {name: (w @ stats.sums[name]) / total for name in TOKEN_FIELDS}
    gap = np.abs(w @ stats.bin_correct - w @ stats.bin_confidence)  # (..., B): n_b * |acc_b - conf_b|
    return {
        "nll": means["nll"],
        "perplexity": np.exp(means["nll"]),
        "entropy": means["entropy"],
        "accuracy": means["correct"],
        "confidence": means["confidence"],
        "ece": gap.sum(axis=-1) / total,
        "brier": means["brier"],
    }


def bootstrap_weights(n_samples: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_samples) multiplicities of a sample bootstrap (each row sums to ``n_samples``): the
    resamples of ``ual.stats.bootstrap_indices(n_samples, resamples, seed)`` counted per sample."""
    draws = np.concatenate(list(st.bootstrap_indices(n_samples, resamples, seed)))
    weights = np.zeros((resamples, n_samples))
    np.add.at(weights, (np.repeat(np.arange(resamples), n_samples), draws.ravel()), 1.0)
    return weights


def bootstrap_metrics(
    stats: SampleStatistics, resamples: int, seed: int, confidence: float = CONFIDENCE
) -> dict[str, dict[str, float]]:
    """``{metric: {"value", "ci_low", "ci_high"}}``: point value and percentile interval over samples."""
    point = calibration_metrics(stats)
    replicates = calibration_metrics(stats, bootstrap_weights(stats.n_samples, resamples, seed))
    tail = st.tail_probability(confidence)
    return {name: st.percentile_interval(point[name], replicates[name], tail) for name in METRICS}


def paired_differences(
    stats: Mapping[str, SampleStatistics],
    reference: str,
    resamples: int,
    seed: int,
    confidence: float = CONFIDENCE,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{model: {metric: {"value", "ci_low", "ci_high"}}}`` of ``model - reference`` for every other model.

    Every model must have been scored on the same tokens (same per-sample token counts); each bootstrap
    replicate re-weights the samples of both models identically (``ual.stats.paired_differences``).
    Identical models give exactly 0 with a zero-width interval.
    """
    if reference not in stats:
        raise KeyError(f"reference model '{reference}' not among {sorted(stats)}")
    base = stats[reference]
    for name, other in stats.items():
        if other.n_samples != base.n_samples or not np.array_equal(other.n_tokens, base.n_tokens):
            raise ValueError(
                f"models '{name}' and '{reference}' were not scored on the same tokens "
                f"({int(other.n_tokens.sum())} vs {int(base.n_tokens.sum())} tokens in "
                f"{other.n_samples} vs {base.n_samples} samples); a paired difference needs the same references "
                "and tokenizer"
            )
    weights = bootstrap_weights(base.n_samples, resamples, seed)
    points = {name: calibration_metrics(other) for name, other in stats.items()}
    replicates = {name: calibration_metrics(other, weights) for name, other in stats.items()}
    tail = st.tail_probability(confidence)
    return st.paired_differences(
        points, replicates, reference, lambda point, reps: st.percentile_interval(point, reps, tail)
    )


def reliability_curve(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS
) -> dict[str, list[float] | list[int]]:
    """Reliability diagram data: per non-empty bin the accuracy, mean confidence and token count.

    Accuracy and mean confidence are scikit-learn's ``calibration_curve(strategy="uniform")``; counts use the
    same binning (``bin_index``).
    """
    from sklearn.calibration import calibration_curve

    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        raise ValueError("reliability_curve needs at least one token")
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform",
                                                  pos_label=1.0)
    counts = np.bincount(bin_index(confidence, n_bins), minlength=n_bins)
    return {
        "accuracy": accuracy.tolist(),
        "confidence": mean_confidence.tolist(),
        "count": [int(c) for c in counts[counts > 0]],
        "bin_edges": np.linspace(0.0, 1.0, n_bins + 1).tolist(),
    }


def reliability_intervals(
    stats: SampleStatistics, resamples: int, seed: int, confidence: float = CONFIDENCE
) -> dict[str, list[Any]]:
    """Per non-empty bin (in bin order, as ``reliability_curve``): accuracy with a sample-bootstrap interval.

    A replicate's bin accuracy is ``w @ bin_correct / w @ bin_count`` with the sample weights of
    ``bootstrap_weights(S, resamples, seed)``; replicates in which a bin is empty are left out of that bin's
    percentile interval (None if no replicate holds the bin). ``accuracy`` and ``confidence`` equal
    scikit-learn's ``calibration_curve``.
    """
    count = stats.bin_count.sum(axis=0)
    keep = np.flatnonzero(count > 0)
    if not len(keep):
        raise ValueError("reliability_intervals needs at least one token")
    weights = bootstrap_weights(stats.n_samples, resamples, seed)
    replicate_count = (weights @ stats.bin_count)[:, keep]
    replicate_correct = (weights @ stats.bin_correct)[:, keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = np.where(replicate_count > 0, replicate_correct / replicate_count, np.nan)
    tail = st.tail_probability(confidence)
    low: list[float | None] = []
    high: list[float | None] = []
    for column in replicates.T:  # a bin no replicate holds (possible for tiny resamples) gets no interval
        seen = column[np.isfinite(column)]
        bounds = st.percentile_bounds(seen, tail) if len(seen) else (None, None)
        low.append(bounds[0])
        high.append(bounds[1])
    return {
        "bin": keep.tolist(),
        "accuracy": (stats.bin_correct.sum(axis=0)[keep] / count[keep]).tolist(),
        "confidence": (stats.bin_confidence.sum(axis=0)[keep] / count[keep]).tolist(),
        "count": [int(c) for c in count[keep]],
        "ci_low": low,
        "ci_high": high,
    }
