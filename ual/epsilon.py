"""Uncertainty -> per-sample label-smoothing value epsilon: the mappings (pure functions; a leaf of ``ual``).

UAL gives training sample i its own eps_i from its uncertainty u_i in [0, 1] by an epsilon mapping
(``EPSILON_MAPPINGS``, the experiment's ``epsilon.mapping``): ``linear`` (the paper: eps_i = eps_min +
(eps_max - eps_min) * u_i, ``score_to_epsilon``) or ``rank`` (u_i replaced by its quantile within the training
set, ties averaged, ``rank_quantiles``: the spread of eps does not depend on how compressed an elicitor's
scores are). A method row of ``ual.methods.METHODS`` names what the method trains with, from UAL's eps of that
training set (``METHOD_MAPPINGS``): ``per_sample`` (UAL), ``constant`` (its mean: LS), ``shuffled`` (its values
permuted, seeded), ``per_dataset`` (the mean of each dataset) and ``zero`` (SFT). ``map_epsilon`` applies both.

Used by the pipeline's stage ``ual.smoothing`` (the epsilon files), by ``python -m ual.elicit --input ...
--eps-max`` and by ``ual.UALSFTTrainer`` (an ``uncertainty`` column).

Extension points: a function ``(uncertainty, eps_min, eps_max) -> epsilon`` in ``EPSILON_MAPPINGS`` (and its
name in ``ual.config.EpsilonMappingName``), or ``(ual_epsilon, datasets, seed) -> epsilon`` in
``METHOD_MAPPINGS`` for a new control (named by a method's row).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "EPSILON_MAPPINGS",
    "MAPPING_VERSION",
    "METHOD_MAPPINGS",
    "map_epsilon",
    "rank_quantiles",
    "score_to_epsilon",
]

MAPPING_VERSION = "v3"


def score_to_epsilon(uncertainty: float, eps_min: float, eps_max: float) -> float:
    """UAL's linear map of one uncertainty u in [0, 1] to eps in [eps_min, eps_max].

    >>> score_to_epsilon(0.5, 0.0, 0.2)
    0.1
    """
    if not 0.0 <= uncertainty <= 1.0:
        raise ValueError(f"uncertainty {uncertainty} outside [0, 1]")
    return eps_min + (eps_max - eps_min) * uncertainty


def _linear(uncertainty: np.ndarray, eps_min: float, eps_max: float) -> np.ndarray:
    return np.array([score_to_epsilon(float(u), eps_min, eps_max) for u in uncertainty])


def rank_quantiles(uncertainty: Sequence[float]) -> np.ndarray:
    """Each value's quantile within ``uncertainty``: ``(rank - 1) / (n - 1)`` with ties given their average
    rank (so equal uncertainty gets equal eps); the smallest distinct value 0, the largest 1.

    >>> rank_quantiles([0.2, 0.9, 0.2, 0.5]).tolist()
    [0.16666666666666666, 1.0, 0.16666666666666666, 0.6666666666666666]
    """
    from scipy.stats import rankdata

    values = np.asarray(uncertainty, dtype=float)
    if len(values) < 2:
        raise ValueError(f"epsilon.mapping 'rank' needs at least two training samples to rank, got {len(values)}")
    return (rankdata(values, method="average") - 1.0) / (len(values) - 1.0)


def _rank(uncertainty: np.ndarray, eps_min: float, eps_max: float) -> np.ndarray:
    return eps_min + (eps_max - eps_min) * rank_quantiles(uncertainty)


def _per_sample(epsilon: np.ndarray, datasets: Sequence[str] | None, seed: int) -> np.ndarray:
    return epsilon


def _constant(epsilon: np.ndarray, datasets: Sequence[str] | None, seed: int) -> np.ndarray:
    return np.full(len(epsilon), float(epsilon.mean()) if len(epsilon) else 0.0)


def _shuffled(epsilon: np.ndarray, datasets: Sequence[str] | None, seed: int) -> np.ndarray:
    return epsilon[np.random.default_rng(seed).permutation(len(epsilon))]


def _per_dataset(epsilon: np.ndarray, datasets: Sequence[str] | None, seed: int) -> np.ndarray:
    """Every sample gets the mean UAL eps of its own dataset (order preserved)."""
    if datasets is None or len(datasets) != len(epsilon):
        got = "none" if datasets is None else f"{len(datasets)}"
        raise ValueError(f"a per-dataset mapping needs the dataset of every sample ({len(epsilon)}), got {got}")
    labels = np.asarray(datasets, dtype=object)
    out = np.zeros(len(epsilon))
    for dataset in dict.fromkeys(datasets):
        members = np.flatnonzero(labels == dataset)
        out[members] = epsilon[members].mean()
    return out


def _zero(epsilon: np.ndarray, datasets: Sequence[str] | None, seed: int) -> np.ndarray:
    return np.zeros(len(epsilon))


# epsilon.mapping: a training set's uncertainty -> UAL's per-sample eps in [eps_min, eps_max]
EpsilonMapping = Callable[[np.ndarray, float, float], np.ndarray]
EPSILON_MAPPINGS: dict[str, EpsilonMapping] = {"linear": _linear, "rank": _rank}
# a method row's mapping: UAL's eps of the training set -> the eps the method trains with (the controls)
MethodMapping = Callable[[np.ndarray, Sequence[str] | None, int], np.ndarray]
METHOD_MAPPINGS: dict[str, MethodMapping] = {
    "per_sample": _per_sample,  # UAL itself
    "constant": _constant,  # LS: the mean of UAL's eps
    "shuffled": _shuffled,  # UAL's eps permuted across samples (seeded)
    "per_dataset": _per_dataset,  # the mean of UAL's eps within each dataset
    "zero": _zero,  # SFT
}


def map_epsilon(
    uncertainty: Sequence[float],
    mapping: str,
    eps_min: float,
    eps_max: float,
    seed: int = 0,
    datasets: Sequence[str] | None = None,
    method_mapping: str = "per_sample",
) -> list[float]:
    """Per-sample eps for one training set (order preserved): UAL's eps by ``mapping`` (``EPSILON_MAPPINGS``,
    the experiment's ``epsilon.mapping``), then what the method does with it (``method_mapping``, a method
    row's ``mapping`` in ``METHOD_MAPPINGS``; ``datasets``, the dataset of each sample, is needed by
    ``per_dataset`` only, ``seed`` by ``shuffled`` only).

    >>> map_epsilon([0.0, 0.5, 1.0], "linear", 0.0, 0.2)
    [0.0, 0.1, 0.2]
    >>> map_epsilon([0.1, 0.1, 0.7], "rank", 0.0, 0.2)
    [0.05, 0.05, 0.2]
    >>> map_epsilon([0.0, 0.5, 1.0], "linear", 0.0, 0.2, method_mapping="constant")
    [0.1, 0.1, 0.1]
    >>> map_epsilon([0.0, 0.5, 1.0], "linear", 0.0, 0.2, datasets=["a", "a", "b"], method_mapping="per_dataset")
    [0.05, 0.05, 0.2]
    """
    if mapping not in EPSILON_MAPPINGS:
        raise ValueError(f"unknown epsilon mapping '{mapping}' (epsilon.mapping); known: {sorted(EPSILON_MAPPINGS)}")
    if method_mapping not in METHOD_MAPPINGS:
        raise ValueError(f"unknown method mapping '{method_mapping}'; known: {sorted(METHOD_MAPPINGS)}")
    if not 0.0 <= eps_min <= eps_max < 1.0:
        raise ValueError(f"need 0 <= eps_min <= eps_max < 1, got eps_min={eps_min}, eps_max={eps_max}")
    ual = EPSILON_MAPPINGS[mapping](np.asarray(uncertainty, dtype=float), eps_min, eps_max)
    epsilon = METHOD_MAPPINGS[method_mapping](ual, datasets, seed)
    return [round(float(e), 12) for e in epsilon]
