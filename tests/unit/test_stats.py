"""ual.stats: the interval record, the resampling helpers, the two intervals, paired differences, describe."""

from __future__ import annotations

import numpy as np
import pytest

from ual import stats


def test_interval_is_the_one_record_of_value_and_bounds():
    assert stats.interval(np.float64(0.5), 0.25, None) == {"value": 0.5, "ci_low": 0.25, "ci_high": None}


def test_bootstrap_indices_do_not_depend_on_the_block_size():
    whole = np.concatenate(list(stats.bootstrap_indices(7, 25, seed=3, block=25)))
    blocks = np.concatenate(list(stats.bootstrap_indices(7, 25, seed=3, block=4)))
    np.testing.assert_array_equal(whole, blocks)
    assert whole.shape == (25, 7) and whole.min() >= 0 and whole.max() < 7
    # the draws of numpy's default_rng(seed), as every bootstrap of the package has always made them
    np.testing.assert_array_equal(whole, np.random.default_rng(3).integers(0, 7, size=(25, 7)))


def test_bootstrap_indices_need_an_item_and_a_resample():
    with pytest.raises(ValueError, match="at least one item and one resample"):
        next(stats.bootstrap_indices(0, 5, seed=0))


def test_stratified_indices_keep_every_stratum_at_its_size():
    strata = [np.array([0, 1, 2]), np.array([5, 6])]
    for index in stats.stratified_indices(strata, resamples=20, seed=1):
        assert set(index[:3]) <= {0, 1, 2} and set(index[3:]) <= {5, 6} and len(index) == 5


def test_percentile_interval_takes_the_tail_quantiles():
    out = stats.percentile_interval(2.0, np.arange(101.0), stats.tail_probability(0.9))
    assert out == pytest.approx({"value": 2.0, "ci_low": 5.0, "ci_high": 95.0})


def test_normal_interval_is_point_plus_minus_z_std():
    replicates = np.arange(101, dtype=float)
    std = np.std(replicates)
    out = stats.normal_interval(0.5, replicates, confidence=0.9)
    z = 1.6448536  # standard normal 95 % quantile
    assert out == pytest.approx({"value": 0.5, "ci_low": 0.5 - z * std, "ci_high": 0.5 + z * std,
                                 "bootstrap_mean": 50.0, "bootstrap_std": std})


def test_paired_differences_difference_points_and_replicates():
    points = {"a": {"m": 1.0}, "b": {"m": 3.0}, "c": {"m": 1.0}}
    replicates = {"a": {"m": np.array([0.0, 1.0, 2.0])}, "b": {"m": np.array([2.0, 4.0, 3.0])},
                  "c": {"m": np.array([0.0, 1.0, 2.0])}}
    out = stats.paired_differences(points, replicates, "a", lambda p, r: stats.interval(p, r.min(), r.max()))
    assert out == {"b": {"m": {"value": 2.0, "ci_low": 1.0, "ci_high": 3.0}},
                   "c": {"m": {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}}}
    with pytest.raises(KeyError, match="reference model 'z'"):
        stats.paired_differences(points, replicates, "z", stats.normal_interval)


def test_describe_gives_n_mean_sd_and_quantiles():
    out = stats.describe([1.0, 2.0, 3.0, 4.0])
    assert out["n"] == 4 and out["mean"] == 2.5 and out["sd"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert out["q50"] == 2.5 and out["q05"] == pytest.approx(1.15)
    assert stats.describe([7.0])["sd"] is None
