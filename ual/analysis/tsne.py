"""t-SNE panels of hidden states coloured by target token (docs/method.md, "Token clustering").

Inputs: per model, unit-norm states (n, H) and their target-token labels (n,).
Outputs: a 2-D embedding per model (``tsne_embedding``, fixed seed) and one matplotlib ``Figure`` with a panel
per model (``make_tsne_figure``); ``ual.analysis.clustering`` saves it as tsne.png and tsne.pdf.
Command: drawn by ``python -m ual.analysis`` (``ual.analysis.clustering.write_clustering``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["tsne_embedding", "tsne_input_sha256", "make_tsne_figure"]


def tsne_embedding(unit_states: np.ndarray, seed: int, perplexity: float) -> np.ndarray:
    """2-D t-SNE (n, 2) of L2-normalised states; perplexity capped at (n - 1) / 3 so small n still works.

    Euclidean distance on unit vectors is a monotone function of cosine distance, so the neighbourhoods are
    the cosine ones the silhouette uses.

    Reproducible: the same states (bit for bit) give the same embedding in any process, whatever the thread
    settings. Every knob is pinned (not left to scikit-learn's defaults, which have changed between
    releases), and OpenMP (the Barnes-Hut gradient sums in thread order) and BLAS (PCA init, neighbour
    distances) run on one thread. t-SNE is chaotic, though: one state changed in its last bit moves points
    by several units (measured: 1 ulp in 1 of 288,000 inputs moved points by up to 7.7 of a 56-unit layout).
    A different layout with equal silhouettes (computed on the states, not the picture) therefore means
    different states, e.g. a model retrained by other code or on another CPU: ``tsne_input_sha256`` in
    clustering.json tells the two cases apart.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    if len(unit_states) < 4:
        raise ValueError(f"t-SNE needs at least 4 states, got {len(unit_states)}")
    perplexity = min(perplexity, (len(unit_states) - 1) / 3.0)
    tsne = TSNE(
        n_components=2, perplexity=perplexity, early_exaggeration=12.0, learning_rate="auto", max_iter=1000,
        n_iter_without_progress=300, min_grad_norm=1e-7, metric="euclidean", init="pca", method="barnes_hut",
        angle=0.5, n_jobs=1, random_state=seed,
    )
    # One thread for every pool; on a shared CPU also 5x faster than spinning threads (1000 states: ~8 s).
    with threadpool_limits(limits=1):
        return tsne.fit_transform(np.asarray(unit_states, dtype=np.float64))


def tsne_input_sha256(unit_states: np.ndarray) -> str:
    """sha256 of exactly what ``tsne_embedding`` embeds (float64, C order): equal hashes, equal pictures."""
    return hashlib.sha256(np.ascontiguousarray(unit_states, dtype=np.float64).tobytes()).hexdigest()


def make_tsne_figure(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
    token_text: Mapping[int, str],
    titles: Mapping[str, str] | None = None,
) -> Any:
    """One scatter panel per model, ``{name: (embedding (n, 2), labels (n,))}``, in the given order.

    Every token of ``token_text`` (most frequent first) keeps one colour across panels; one shared legend.
    """
    import matplotlib
    from matplotlib.figure import Figure

    palette = matplotlib.colormaps["tab10" if len(token_text) <= 10 else "tab20"]
    colours = {token: palette(i % palette.N) for i, token in enumerate(token_text)}
    figure = Figure(figsize=(4.0 * len(panels), 4.6), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (name, (embedding, labels)) in zip(axes, panels.items(), strict=True):
        for token, text in token_text.items():
            mask = labels == token  # an empty scatter still gives the legend its entry
            axis.scatter(
                embedding[mask, 0], embedding[mask, 1], s=6, alpha=0.8, color=colours[token], label=text
            )
        axis.set_title((titles or {}).get(name, name), fontsize=10)
        axis.set_xticks([])
        axis.set_yticks([])
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(
        handles, names, loc="outside lower center", ncols=min(len(names), 10), fontsize=8, markerscale=2.5,
        title="target token",
    )
    return figure
