"""The t-SNE figure is reproducible: the same states give byte-identical PNG and PDF files in two processes
with different thread settings and clocks (issue 15: a rerun gave a figure 83,691 pixels different).

What varied: the PDF carried its creation time; t-SNE itself was already deterministic for bit-identical
states, so a different layout came from different states (t-SNE is chaotic, see ual.analysis.tsne).

Run: python -m pytest tests/unit/test_figure_reproducible.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

DRAW = """
import sys
from pathlib import Path
import numpy as np
from ual.analysis.clustering import save_figure
from ual.analysis.metrics import l2_normalise
from ual.analysis.tsne import make_tsne_figure, tsne_embedding

rng = np.random.default_rng(0)
labels = np.repeat(np.arange(10, 14), 30)
panels = {}
for model, noise in (("sft", 0.9), ("ual", 0.5)):
    centres = rng.normal(size=(4, 64))
    states = l2_normalise(centres[labels - 10] + noise * rng.normal(size=(len(labels), 64)))
    panels[model] = (tsne_embedding(states, seed=0, perplexity=30.0), labels)
tokens = {10: "' the'", 11: "'.'", 12: "','", 13: "' a'"}
figure = make_tsne_figure(panels, tokens, {"sft": "sft: silhouette 0.1"})
save_figure(figure, Path(sys.argv[1]), "tsne", provenance="ual.analysis.clustering test/mixed git abc")
"""


def _draw(out: Path, threads: int) -> dict[str, bytes]:
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-c", DRAW, str(out)], env=env, check=True, timeout=300, cwd=REPO)
    return {name: (out / name).read_bytes() for name in ("tsne.png", "tsne.pdf")}


def test_same_states_give_byte_identical_png_and_pdf_in_separate_processes(tmp_path):
    first = _draw(tmp_path / "one", threads=1)
    second = _draw(tmp_path / "two", threads=3)  # started seconds later: a dated PDF would differ
    assert first["tsne.png"] == second["tsne.png"]
    assert first["tsne.pdf"] == second["tsne.pdf"]
    assert b"/CreationDate" not in first["tsne.pdf"]



def _loss_figure(losses: list[float]):
    import pandas as pd

    from ual.report.figures import loss_figure

    train = pd.DataFrame({"scenario": "mixed", "variant": "sft", "seed": 0, "step": range(1, len(losses) + 1),
                          "loss": losses})
    return loss_figure(train, ["mixed"])


def test_a_drawn_figure_writes_its_plotted_data_and_publish_compares_figures_by_it(tmp_path):
    from ual.report.figures import save_figure
    from ual.report.publish import compare_figures

    old, same, new = tmp_path / "committed", tmp_path / "same", tmp_path / "new"
    save_figure(_loss_figure([2.0, 1.5, 1.25]), old, "fig_loss", {"git_sha": "a"})
    written = save_figure(_loss_figure([2.0, 1.5, 1.25]), same, "fig_loss", {"git_sha": "b"})
    changed = save_figure(_loss_figure([2.0, 1.5, 1.2]), new, "fig_loss", {"git_sha": "a"})
    assert [p.name for p in written] == ["fig_loss.png", "fig_loss.pdf", "fig_loss.png.data.json"]
    data = json.loads(written[2].read_text())
    assert data["axes"][0]["lines"][0]["y"] == [2.0, 1.5, 1.25]  # the plotted values themselves
    assert compare_figures(sorted(written), old) == {"fig_loss": "identical"}  # in any order (publish sorts)
    difference = compare_figures(sorted(changed), old)["fig_loss"]
    assert difference["file"].endswith("fig_loss.png.data.json")
