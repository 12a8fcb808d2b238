"""Paper figures from tidy result frames (matplotlib, Agg), saved as PNG and PDF with provenance metadata.

- ``fig_uncertainty``: histogram of the elicited score (1..10) by dataset.
- ``fig_clusters``: the t-SNE panels (SFT | LS | UAL) drawn by ``ual.analysis.clustering`` for the ablation
  scenario, with its silhouette per model; copied byte for byte from that stage's PNG and PDF.
- ``fig_ablation``: AlpacaEval / GSM8K / MATH against eps_max for UAL, with SFT, LS and shuffled as lines.
- ``fig_loss``: per-step training loss, SFT vs UAL (and LS), one panel per scenario.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ual.config import MAIN_TABLE_METHODS  # noqa: E402
from ual.report.tables import METHOD_LABELS, TASK_COLUMNS  # noqa: E402
from ual.variants import ual_at  # noqa: E402

__all__ = ["save_figure", "uncertainty_figure", "ablation_figure", "loss_figure", "copy_cluster_figure"]


def save_figure(fig, out_dir: Path, name: str, provenance: dict[str, Any]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(provenance, sort_keys=True)
    png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Description": text, "Software": "ual.report"})
    fig.savefig(pdf, bbox_inches="tight", metadata={"Subject": text, "Creator": "ual.report"})
    plt.close(fig)
    return [png, pdf]


def uncertainty_figure(scores: pd.DataFrame):
    datasets = sorted(scores["dataset"].unique())
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = [x + 0.5 for x in range(0, 11)]
    for dataset in datasets:
        values = scores.loc[scores.dataset == dataset, "score"].dropna().astype(float)
        ax.hist(values, bins=bins, alpha=0.6, label=f"{dataset} (n={len(values)})")
    ax.set_xlabel("elicited uncertainty score (1 = one correct answer, 10 = many)")
    ax.set_ylabel("training samples")
    ax.set_xticks(range(1, 11))
    ax.legend()
    ax.set_title("Elicited uncertainty by dataset")
    return fig


def ablation_figure(metrics: pd.DataFrame, scenario: str, tasks: list[str], eps_max: float, sweep: list[float]):
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    part = metrics[metrics.scenario == scenario]
    points = sorted({eps_max, *sweep})
    for ax, task in zip(axes[0], tasks, strict=True):
        xs, ys = [], []
        for value in points:
            rows = part[(part.variant == ual_at(value, eps_max).name) & (part.task == task)]
            if not rows.empty:
                xs.append(value)
                ys.append(rows["value"].mean())
        ax.plot(xs, ys, marker="o", label="UAL")
        for variant, style in (("sft", "--"), ("ls", ":"), ("ual_shuffled", "-.")):
            rows = part[(part.variant == variant) & (part.task == task)]
            if not rows.empty:
                ax.axhline(rows["value"].mean(), linestyle=style, color="grey", label=METHOD_LABELS[variant])
        ax.set_xlabel("eps_max")
        ax.set_title(TASK_COLUMNS[task])
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Ablation ({scenario} scenario)")
    fig.tight_layout()
    return fig


def loss_figure(train: pd.DataFrame, scenarios: list[str]):
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4 * len(scenarios), 3.2), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for variant in MAIN_TABLE_METHODS:
            rows = train[(train.scenario == scenario) & (train.variant == variant)]
            if rows.empty:
                continue
            mean = rows.groupby("step")["loss"].mean()
            ax.plot(mean.index, mean.values, label=METHOD_LABELS[variant])
        ax.set_title(f"{scenario} scenario")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("training loss (label-smoothed CE)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def copy_cluster_figure(analysis_dir: Path, out_dir: Path, name: str) -> list[Path]:
    """fig_clusters is the clustering stage's own t-SNE figure; copy both formats."""
    out_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for ext in ("png", "pdf"):
        source = analysis_dir / f"tsne.{ext}"
        if not source.is_file():
            raise FileNotFoundError(f"{source}: the clustering stage wrote no t-SNE figure")
        target = out_dir / f"{name}.{ext}"
        shutil.copyfile(source, target)
        copied.append(target)
    return copied
