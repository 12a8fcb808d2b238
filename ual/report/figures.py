"""Paper figures from tidy result frames (matplotlib, Agg), saved as PNG and PDF with provenance metadata.

- ``fig_uncertainty``: histogram of the elicited score (1..10) by dataset.
- ``fig_clusters``: the t-SNE panels (SFT | LS | UAL) drawn by ``ual.analysis.clustering`` for the ablation
  scenario, with its silhouette per model; copied byte for byte from that stage's PNG and PDF.
- ``fig_ablation``: each task's result against eps_max for UAL (error bars), with every other method
  (``ual.methods``: SFT, LS, shuffled and per-dataset eps) as a line in its row's linestyle with a band; bars
  and bands are the tables' +- (``tables._cell``: AlpacaEval 1 SE, accuracies half the 95 % interval).
- ``fig_loss``: per-step training loss, SFT vs UAL (and LS), one panel per scenario; with several seeds a
  band of +- 1 SE over seeds, with one seed a note that there is no interval.
- ``fig_calibration``: reliability diagrams of the ablation scenario (first seed), one panel per task type,
  one curve per model (base, SFT, LS, UAL): accuracy of the top-1 prediction against its mean confidence per
  equal-width bin, with the sample-bootstrap 95 % interval of each bin's accuracy.
- ``fig_contrasts``: the ablation scenario's paired held-out NLL differences UAL - control (LS, shuffled,
  per-dataset; ``ual.methods.CONTROL_PAIRS``), one row per task type and control, with the paired bootstrap
  95 % interval and a line at 0 (the numbers of ``table_contrasts``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ual import methods  # noqa: E402
from ual.methods import METHODS, swept_method  # noqa: E402
from ual.provenance import sidecar_path, write_text_atomic  # noqa: E402
from ual.report.artifacts import get_artifact  # noqa: E402
from ual.report.tables import BASE, _cell, variant_label  # noqa: E402
from ual.tasks import get_task  # noqa: E402
from ual.variants import ual_at  # noqa: E402

__all__ = [
    "save_figure",
    "uncertainty_figure",
    "ablation_figure",
    "loss_figure",
    "contrast_figure",
    "calibration_figure",
    "copy_figure",
]
ERROR_NOTE = "bars / bands: AlpacaEval +- 1 SE, accuracies +- half the 95 % interval (as in the tables)"


def _numbers(values: Any) -> Any:
    """Plotted coordinates as JSON numbers, to 10 significant digits (renderer- and platform-independent)."""
    array = np.asarray(values, dtype=float)
    return [None if not np.isfinite(v) else float(f"{v:.10g}") for v in array.ravel()]


def figure_data(fig) -> dict[str, Any]:
    """What a figure shows, read back from its artists: per axes its title, axis labels, every line (label,
    x, y), every patch (bars, spans: x, y, width, height, from its path) and every collection (error bars,
    bands: the vertices of its paths). Two figures with equal data show the same, whatever the renderer."""
    axes = []
    for ax in fig.axes:
        axes.append({
            "title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "lines": [{"label": line.get_label(), "x": _numbers(line.get_xdata()), "y": _numbers(line.get_ydata())}
                      for line in ax.lines],
            "patches": [_numbers(patch.get_path().transformed(patch.get_patch_transform()).vertices)
                        for patch in ax.patches],
            "collections": [[_numbers(path.vertices) for path in collection.get_paths()]
                            for collection in ax.collections],
        })
    return {"suptitle": fig.get_suptitle(), "axes": axes}


def save_figure(fig, out_dir: Path, name: str, provenance: dict[str, Any]) -> list[Path]:
    """PNG and PDF (provenance in their metadata) and the figure's data (``figure_data``) in the sidecar
    ``<name>.png.data.json``, by which ``ual.report.publish`` compares a figure with the committed one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(provenance, sort_keys=True)
    png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Description": text, "Software": "ual.report"})
    fig.savefig(pdf, bbox_inches="tight", metadata={"Subject": text, "Creator": "ual.report"})
    data = sidecar_path(png, "data")
    write_text_atomic(data, json.dumps(figure_data(fig), sort_keys=True) + "\n")
    plt.close(fig)
    return [png, pdf, data]


def uncertainty_figure(scores: pd.DataFrame):
    """Histograms of the elicited uncertainty by dataset, one panel per ``source``: the verbalized
    score on its 1-10 scale, the entropy source as its normalised u in [0, 1]."""
    sources = [m for m in ("verbalized", "entropy") if m in set(scores["source"])]
    fig, axes = plt.subplots(1, len(sources), figsize=(6 * len(sources), 3.5), squeeze=False)
    for ax, source in zip(axes[0], sources, strict=True):
        part = scores[scores.source == source]
        column, bins = ("score", [x + 0.5 for x in range(0, 11)]) if source == "verbalized" else (
            "uncertainty", [x / 10 for x in range(0, 11)])
        for dataset in sorted(part["dataset"].unique()):
            values = part.loc[part.dataset == dataset, column].dropna().astype(float)
            ax.hist(values, bins=bins, alpha=0.6, label=f"{dataset} (n={len(values)})")
        if source == "verbalized":
            ax.set_xlabel("elicited uncertainty score (1 = one correct answer, 10 = many)")
            ax.set_xticks(range(1, 11))
        else:
            ax.set_xlabel("mean token entropy of the reference, min-max normalised (u)")
        ax.set_ylabel("training samples")
        ax.legend()
        ax.set_title(f"Elicited uncertainty by dataset ({source})")
    return fig


def ablation_figure(metrics: pd.DataFrame, scenario: str, tasks: list[str], eps_max: float, sweep: list[float]):
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.4), squeeze=False)
    points = sorted({eps_max, *sweep})
    lines = [(name, method) for name, method in METHODS.items() if method.reference_line]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, task in zip(axes[0], tasks, strict=True):
        xs, ys, errors = [], [], []
        for value in points:
            mean, error = _cell(metrics, scenario, ual_at(value, eps_max).name, task)
            if mean is not None:
                xs.append(value)
                ys.append(mean)
                errors.append(0.0 if error is None else error)
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, color=colours[0], label=swept_method().label)
        for k, (variant, method) in enumerate(lines, start=1):
            mean, error = _cell(metrics, scenario, variant, task)
            if mean is None:
                continue
            colour = colours[k % len(colours)]
            ax.axhline(mean, linestyle=method.linestyle, color=colour, label=method.label)
            if error:
                ax.axhspan(mean - error, mean + error, color=colour, alpha=0.12, linewidth=0)
        ax.set_xlabel("eps_max")
        ax.set_title(get_task(task).label)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Ablation ({scenario} scenario); {ERROR_NOTE}", fontsize=9)
    fig.tight_layout()
    return fig


def loss_figure(train: pd.DataFrame, scenarios: list[str]):
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4 * len(scenarios), 3.4), squeeze=False)
    n_seeds = train.groupby(["scenario", "variant"])["seed"].nunique().min() if not train.empty else 0
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for variant in methods.MAIN_TABLE_METHODS:
            rows = train[(train.scenario == scenario) & (train.variant == variant)]
            if rows.empty:
                continue
            by_step = rows.groupby("step")["loss"]
            mean = by_step.mean()
            (line,) = ax.plot(mean.index, mean.values, label=METHODS[variant].label)
            counts = by_step.count()
            if counts.min() > 1:  # +- 1 SE over seeds at each step
                se = by_step.std(ddof=1) / counts.pow(0.5)
                ax.fill_between(mean.index, mean - se, mean + se, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(f"{scenario} scenario")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("training loss (label-smoothed CE)")
        ax.legend(fontsize=7)
    note = ("band: +- 1 SE over seeds" if n_seeds > 1 else
            "one seed: no interval\n(each point is one run's minibatch loss; its spread over seeds is unmeasured)")
    fig.suptitle(note, fontsize=8)
    fig.tight_layout()
    return fig


def calibration_figure(reliability: pd.DataFrame, calibration: pd.DataFrame, scenario: str):
    """Reliability diagrams of ``scenario`` (first seed): one panel per task type, one curve per model."""
    part = reliability[reliability.scenario == scenario]
    if part.empty:
        raise ValueError(f"no calibration result for the {scenario} scenario")
    part = part[part.seed == part["seed"].min()]
    tasks = list(dict.fromkeys(part["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 4.2), squeeze=False)
    ece = calibration[(calibration.scenario == scenario) & (calibration.quantity == "value")
                      & (calibration.metric == "ece") & (calibration.seed == part["seed"].min())]
    for ax, task in zip(axes[0], tasks, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--", label="perfect calibration")
        of_task = part[part.task == task]
        models = [m for m in (BASE, *methods.MAIN_TABLE_METHODS) if m in set(of_task["model"])]
        for k, model in enumerate(models):
            curve = of_task[of_task.model == model].sort_values("bin")
            low = (curve["accuracy"] - curve["ci_low"].astype(float)).clip(lower=0).fillna(0)
            high = (curve["ci_high"].astype(float) - curve["accuracy"]).clip(lower=0).fillna(0)
            offset = (k - (len(models) - 1) / 2) * 0.006  # side by side, so the bars stay readable
            value = ece[(ece.task == task) & (ece.model == model)]
            label = variant_label(model) + (f" (ECE {value['value'].iloc[0]:.3f})" if len(value) else "")
            ax.errorbar(curve["confidence"] + offset, curve["accuracy"], yerr=[low, high], marker="o",
                        markersize=3, capsize=2, linewidth=1, label=label)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("mean top-1 confidence (15 equal-width bins)")
        ax.set_ylabel("top-1 accuracy")
        ax.set_title(of_task["task_label"].iloc[0], fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    fig.suptitle(f"Reliability of held-out references, teacher-forced ({scenario} scenario); bars: 95 % sample "
                 "bootstrap interval", fontsize=9)
    fig.tight_layout()
    return fig


def contrast_figure(calibration: pd.DataFrame, scenario: str):
    """``fig_contrasts`` (module docstring): first seed of ``scenario``."""
    part = calibration[(calibration.scenario == scenario) & (calibration.metric == "nll")]
    part = part[part.seed == part["seed"].min()] if len(part) else part
    rows = []
    for task in dict.fromkeys(part["task"]):
        for method, control in methods.CONTROL_PAIRS:
            cell = part[(part.task == task) & (part.model == method) & (part.quantity == f"minus_{control}")]
            if len(cell):
                label = f"{cell['task_label'].iloc[0]}: {METHODS[method].label} - {METHODS[control].label}"
                rows.append((label, *cell[["value", "ci_low", "ci_high"]].iloc[0]))
    if not rows:
        raise ValueError(f"no paired UAL - control difference in the calibration of the {scenario} scenario")
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.4))
    for y, (label, value, low, high) in enumerate(reversed(rows)):
        ax.errorbar(value, y, xerr=[[value - low], [high - value]], fmt="o", color="black", capsize=3)
    ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(rows)), [label for label, *_ in reversed(rows)], fontsize=7)
    ax.set_xlabel("paired difference of held-out NLL (nats/token); < 0: the method fits the references better")
    ax.set_title(f"UAL minus its controls, teacher-forced ({scenario} scenario); bars: paired bootstrap 95 % "
                 "interval", fontsize=8)
    fig.tight_layout()
    return fig


def copy_figure(files: list[Path], out_dir: Path, name: str) -> list[Path]:
    """A figure drawn by a stage (fig_clusters: ``ual.analysis.clustering``'s t-SNE), copied byte for byte:
    one given file per format of the artifact (PNG, PDF)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for ext in get_artifact(name).extensions:
        sources = [Path(f) for f in files if Path(f).suffix == f".{ext}"]
        if len(sources) != 1 or not sources[0].is_file():
            given = [str(f) for f in files]
            raise FileNotFoundError(f"{name}: expected one existing .{ext} file among {given}")
        target = out_dir / f"{name}.{ext}"
        shutil.copyfile(sources[0], target)
        copied.append(target)
    return copied
