"""Teacher-forced calibration metrics (ual.analysis.calibration) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ual.analysis.calibration import (
    N_BINS,
    bin_index,
    bootstrap_metrics,
    bootstrap_weights,
    calibration_metrics,
    head_token_statistics,
    paired_differences,
    reliability_curve,
    reliability_intervals,
    sample_statistics,
    token_statistics,
)

LOG3 = math.log(3.0)


def stats_of(logits, targets, samples, n_samples):
    tokens = token_statistics(torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(targets))
    return tokens, sample_statistics(tokens, np.array(samples), n_samples)


def test_two_class_token_values_by_hand():
    tokens = token_statistics(torch.tensor([[LOG3, 0.0], [LOG3, 0.0]]), torch.tensor([0, 1]))
    np.testing.assert_allclose(tokens["nll"], [-math.log(0.75), -math.log(0.25)])
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    np.testing.assert_allclose(tokens["entropy"], [entropy, entropy])
    np.testing.assert_allclose(tokens["confidence"], [0.75, 0.75])
    np.testing.assert_array_equal(tokens["correct"], [1.0, 0.0])
    # (0.75 - 1)^2 + 0.25^2 = 0.125 ; 0.75^2 + (0.25 - 1)^2 = 1.125
    np.testing.assert_allclose(tokens["brier"], [0.125, 1.125])


def test_uniform_logits_give_log_v_and_brier_one_minus_one_over_v():
    vocab = 7
    tokens = token_statistics(torch.zeros(3, vocab), torch.tensor([0, 3, 6]))
    np.testing.assert_allclose(tokens["nll"], math.log(vocab))
    np.testing.assert_allclose(tokens["entropy"], math.log(vocab))
    np.testing.assert_allclose(tokens["brier"], 1 - 1 / vocab)
    np.testing.assert_allclose(tokens["confidence"], 1 / vocab)


def test_exactly_calibrated_tokens_have_ece_zero():
    # four tokens at confidence 0.75, three of them correct: accuracy 0.75 in the one occupied bin
    _, stats = stats_of([[LOG3, 0.0]] * 4, [0, 0, 0, 1], [0, 0, 1, 1], 2)
    metrics = calibration_metrics(stats)
    assert float(metrics["ece"]) == pytest.approx(0.0, abs=1e-15)
    assert float(metrics["accuracy"]) == pytest.approx(0.75)
    assert float(metrics["confidence"]) == pytest.approx(0.75)


def test_fully_overconfident_tokens_have_ece_near_one():
    _, stats = stats_of([[30.0, 0.0]] * 5, [1] * 5, [0, 1, 2, 3, 4], 5)
    metrics = calibration_metrics(stats)
    assert float(metrics["ece"]) == pytest.approx(1.0, abs=1e-12)
    assert float(metrics["accuracy"]) == 0.0
    assert float(metrics["nll"]) == pytest.approx(30.0, abs=1e-9)


def test_ece_by_hand_over_two_bins():
    # bin of 0.75 (3 tokens, 1 correct) and bin of 0.5 (1 token, correct):
    # ECE = 3/4 * |1/3 - 0.75| + 1/4 * |1 - 0.5| = 0.3125 + 0.125
    _, stats = stats_of([[LOG3, 0.0]] * 3 + [[0.0, 0.0]], [0, 1, 1, 0], [0, 0, 0, 0], 1)
    assert float(calibration_metrics(stats)["ece"]) == pytest.approx(0.4375)


def test_token_mean_weighs_every_token_equally():
    # sample 0: one token nll log 4; sample 1: three tokens nll log(4/3)
    _, stats = stats_of([[LOG3, 0.0]] * 4, [1, 0, 0, 0], [0, 1, 1, 1], 2)
    expected = (math.log(4) + 3 * math.log(4 / 3)) / 4
    metrics = calibration_metrics(stats)
    assert float(metrics["nll"]) == pytest.approx(expected)
    assert float(metrics["perplexity"]) == pytest.approx(math.exp(expected))


def test_ece_matches_scikit_learn_calibration_curve():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(400, 6)) * 2)
    targets = torch.tensor(rng.integers(0, 6, size=400))
    tokens = token_statistics(logits, targets)
    stats = sample_statistics(tokens, rng.integers(0, 37, size=400), 37)
    curve = reliability_curve(tokens["confidence"], tokens["correct"])
    counts = np.array(curve["count"])
    ece = float(np.sum(counts / counts.sum() * np.abs(np.array(curve["accuracy"]) - curve["confidence"])))
    assert float(calibration_metrics(stats)["ece"]) == pytest.approx(ece, abs=1e-12)
    assert counts.sum() == 400 and len(curve["bin_edges"]) == N_BINS + 1


def test_bins_follow_scikit_learn_edges():
    assert bin_index(np.array([0.0, 0.5 / 15, 1.5 / 15, 0.999, 1.0])).tolist() == [0, 0, 1, 14, 14]


def test_streamed_head_statistics_equal_materialised_logits():
    torch.manual_seed(0)
    hidden, weight, bias = torch.randn(50, 8), torch.randn(11, 8), torch.randn(11)
    targets = torch.randint(0, 11, (50,))
    streamed = head_token_statistics(hidden, weight, targets, bias=bias, chunk_size=7)
    full = token_statistics(hidden @ weight.T + bias, targets)
    for name in full:
        np.testing.assert_allclose(streamed[name], full[name], rtol=1e-6, atol=1e-7)


def test_bad_targets_and_nan_logits_are_refused():
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 2\)"):
        token_statistics(torch.zeros(1, 2), torch.tensor([2]))
    with pytest.raises(ValueError, match="not finite"):
        token_statistics(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]))


def test_no_token_at_all_is_an_error_not_nan():
    stats = sample_statistics({k: np.zeros(0) for k in ("nll", "entropy", "confidence", "correct", "brier")},
                              np.zeros(0, dtype=np.int64), 3)
    with pytest.raises(ValueError, match="no response token"):
        calibration_metrics(stats)


def test_bootstrap_weights_resample_samples_with_replacement():
    weights = bootstrap_weights(5, 100, seed=3)
    assert weights.shape == (100, 5)
    assert np.all(weights.sum(axis=1) == 5)
    assert np.array_equal(weights, bootstrap_weights(5, 100, seed=3))
    assert not np.array_equal(weights, bootstrap_weights(5, 100, seed=4))


def test_identical_models_differ_by_exactly_zero():
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(60, 5)))
    targets = torch.tensor(rng.integers(0, 5, size=60))
    samples = rng.integers(0, 12, size=60)
    _, stats = stats_of(logits, targets, samples, 12)
    diffs = paired_differences({"sft": stats, "ual": stats}, "sft", resamples=200, seed=0)
    for interval in diffs["ual"].values():
        assert interval == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}


def test_a_known_shift_is_recovered_with_a_tight_interval():
    rng = np.random.default_rng(2)
    logits = torch.tensor(rng.normal(size=(80, 4)))
    targets = torch.tensor(rng.integers(0, 4, size=80))
    samples = rng.integers(0, 16, size=80)
    tokens, stats = stats_of(logits, targets, samples, 16)
    shifted = dict(tokens, nll=tokens["nll"] + 0.3)  # every token 0.3 nats less likely
    other = sample_statistics(shifted, samples, 16)
    diff = paired_differences({"sft": stats, "ual": other}, "sft", resamples=300, seed=0)["ual"]["nll"]
    assert diff["value"] == pytest.approx(0.3)
    assert diff["ci_low"] == pytest.approx(0.3) and diff["ci_high"] == pytest.approx(0.3)
    single = bootstrap_metrics(stats, resamples=300, seed=0)["nll"]
    assert single["ci_high"] - single["ci_low"] > 0.01  # the unpaired interval is not degenerate


def test_models_scored_on_other_tokens_are_not_paired():
    _, a = stats_of([[0.0, 0.0]] * 2, [0, 1], [0, 1], 2)
    _, b = stats_of([[0.0, 0.0]] * 3, [0, 1, 1], [0, 1, 1], 2)
    with pytest.raises(ValueError, match="not scored on the same tokens"):
        paired_differences({"sft": a, "ual": b}, "sft", resamples=10, seed=0)


def test_reliability_points_from_sample_statistics_equal_scikit_learn():
    rng = np.random.default_rng(5)
    logits = torch.tensor(rng.normal(size=(500, 5)) * 3)
    targets = torch.tensor(rng.integers(0, 5, size=500))
    tokens = token_statistics(logits, targets)
    stats = sample_statistics(tokens, rng.integers(0, 40, size=500), 40)
    curve = reliability_curve(tokens["confidence"], tokens["correct"])
    intervals = reliability_intervals(stats, resamples=300, seed=0)
    np.testing.assert_allclose(intervals["accuracy"], curve["accuracy"], rtol=1e-12)
    np.testing.assert_allclose(intervals["confidence"], curve["confidence"], rtol=1e-12)
    assert intervals["count"] == curve["count"]
    assert intervals["bin"] == sorted(set(bin_index(tokens["confidence"]).tolist()))
    for low, point, high in zip(intervals["ci_low"], intervals["accuracy"], intervals["ci_high"], strict=True):
        assert low <= point + 1e-12 and point <= high + 1e-12


def test_reliability_interval_by_hand_and_a_bin_no_replicate_holds():
    # one sample in bin 11 (confidence 0.75), fully correct; one in bin 7 (0.5), wrong: every replicate that
    # holds a bin holds its one sample, so each interval is the point itself
    _, stats = stats_of([[LOG3, 0.0], [0.0, 0.0]], [0, 1], [0, 1], 2)
    intervals = reliability_intervals(stats, resamples=200, seed=0)
    assert intervals["bin"] == [7, 11] and intervals["count"] == [1, 1]
    assert intervals["accuracy"] == [0.0, 1.0] and intervals["confidence"] == pytest.approx([0.5, 0.75])
    assert intervals["ci_low"] == [0.0, 1.0] and intervals["ci_high"] == [0.0, 1.0]
    # seed 0's single replicate draws sample 1 twice and never sees bin 11: no interval, not a made-up one
    assert bootstrap_weights(2, 1, seed=0).tolist() == [[0.0, 2.0]]
    single = reliability_intervals(stats, resamples=1, seed=0)
    assert single["ci_low"] == [0.0, None] and single["ci_high"] == [0.0, None]


def test_the_stage_pairs_ual_with_each_of_its_controls():
    """ual.analysis.stage.differences: model - sft, model - base, and UAL - LS / shuffled / per-dataset
    (ual.methods.CONTROL_PAIRS): 0 for an identical control, a known shift recovered exactly."""
    from ual.analysis.stage import ModelScores, compared_pairs, differences

    rng = np.random.default_rng(5)
    logits = torch.tensor(rng.normal(size=(90, 4)))
    targets = torch.tensor(rng.integers(0, 4, size=90))
    samples = rng.integers(0, 15, size=90)
    tokens, stats = stats_of(logits, targets, samples, 15)
    better = sample_statistics(dict(tokens, nll=tokens["nll"] - 0.05), samples, 15)  # UAL: 0.05 nats better
    names = ("base", "sft", "ls", "ual", "ual_shuffled", "ual_dataset")
    scores = {name: ModelScores(name, {"gsm8k": better if name == "ual" else stats}) for name in names}
    assert compared_pairs(list(scores))[-3:] == [("ual", "ls"), ("ual", "ual_shuffled"), ("ual", "ual_dataset")]
    assert compared_pairs(["sft", "ual", "ual_shuffled"]) == [("ual", "sft"), ("ual_shuffled", "sft"),
                                                               ("ual", "ual_shuffled")]
    out = differences(scores, resamples=200, seed=0)
    assert set(out) == {"sft", "base", "ls", "ual_shuffled", "ual_dataset"}
    for control in ("ls", "ual_shuffled", "ual_dataset"):
        assert set(out[control]) == {"ual"}  # a control is the reference of its method only
        nll = out[control]["ual"]["gsm8k"]["nll"]
        assert nll["value"] == pytest.approx(-0.05) and nll["ci_high"] == pytest.approx(-0.05)
    assert out["sft"]["ls"]["gsm8k"]["nll"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
