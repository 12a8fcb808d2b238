"""Report stage: ``paper_tables/<exp>/`` and ``figures/<exp>/`` from result files only (no model, no judge).

Inputs: the experiment file and the result files the workflow lists (evaluate metrics, clustering and
calibration JSON, training metrics, elicited scores: one file per uncertainty source, the epsilon files of
the trained variants, the ablation scenario's t-SNE figure; a judged task's annotations beside its metrics),
plus ``resources/paper_reported.csv`` (the paper's reported numbers, the only
hand-entered numbers in the project). Scenario, variant and seed of every result come from its ``identity``
(``ual.report.collect``). ``--data-sources``: the data records of ``ual.inputs``, carried into provenance.
Outputs: every table or figure of ``ual.report.artifacts.ARTIFACTS``, each built by its function in
``BUILDERS`` (``ual.report.tables``, ``ual.report.contrasts``, ``ual.report.figures``).

    python -m ual.report tables --experiment experiments/tiny.yaml \\
        --metrics results/tiny/seed0/evaluate/*/*/*.json \\
        --clustering results/tiny/seed0/analysis/*/clustering.json \\
        --calibration results/tiny/seed0/analysis/*/calibration.json \\
        --scores results/tiny/elicit/scores.jsonl \\
        --epsilon results/tiny/epsilon/*/*.jsonl --out paper_tables/tiny
    python -m ual.report figures ... --train results/tiny/seed0/train/*/*/train_metrics.json \\
        --tsne results/tiny/seed0/analysis/mixed/tsne.{png,pdf} --out figures/tiny
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from ual.report import collect, contrasts, figures, tables
from ual.report.artifacts import FIGURES, TABLES, Artifact
from ual.scenarios import ablation_scenario

__all__ = ["BUILDERS", "Inputs", "main", "make_figures", "make_tables"]

logger = logging.getLogger(__name__)

REPORTED = Path(__file__).resolve().parents[2] / "resources" / "paper_reported.csv"


class Inputs:
    """The command line's result files, each read once, when a builder first asks for it."""

    def __init__(self, args: argparse.Namespace) -> None:
        from ual.experiment import load_experiment

        self.args = args
        self.experiment = load_experiment(args.experiment)
        self.scenarios = list(self.experiment.data.scenarios)
        self.tasks = list(self.experiment.evaluate.tasks)
        self.scenario = ablation_scenario(self.scenarios)  # the ablation's (table_ablation, the figures)

    @cached_property
    def metrics(self) -> pd.DataFrame:
        return collect.read_metrics(self.args.metrics)

    @cached_property
    def calibration(self) -> pd.DataFrame:
        return collect.read_calibration(self.args.calibration)

    @cached_property
    def epsilon(self) -> pd.DataFrame:
        return collect.read_epsilon(self.args.epsilon)

    @cached_property
    def preferences(self) -> pd.DataFrame:
        return collect.read_preferences(self.args.metrics)

    @cached_property
    def scores(self) -> pd.DataFrame:
        return collect.read_scores(self.args.scores)

    @cached_property
    def provenance(self) -> dict[str, Any]:
        from ual.inputs import read_sources_records

        sources = read_sources_records(self.args.data_sources) if self.args.data_sources else None
        return collect.provenance_summary(self.metrics, self.experiment, data_sources=sources)

    def title(self, artifact: Artifact) -> str:
        return artifact.title.format(scenario=self.scenario)


def _table_main(inputs: Inputs) -> pd.DataFrame:
    reported = pd.read_csv(inputs.args.reported)
    return tables.main_table(inputs.metrics, reported, inputs.scenarios, inputs.tasks)


def _table_ablation(inputs: Inputs) -> pd.DataFrame:
    eps = inputs.experiment.epsilon
    return tables.ablation_table(inputs.metrics, inputs.scenario, inputs.tasks, eps.eps_max,
                                 list(eps.ablation_eps_max))


def _table_crosscheck(inputs: Inputs) -> pd.DataFrame:
    return tables.crosscheck_table(collect.read_crosscheck(inputs.args.metrics), inputs.scenarios)


def _table_clustering(inputs: Inputs) -> pd.DataFrame:
    return tables.clustering_table(collect.read_clustering(inputs.args.clustering))


def _table_calibration(inputs: Inputs) -> pd.DataFrame:
    return tables.calibration_table(inputs.calibration, inputs.scenarios)


def _table_uncertainty(inputs: Inputs) -> pd.DataFrame:
    return tables.uncertainty_table(inputs.scores)


def _table_epsilon(inputs: Inputs) -> pd.DataFrame:
    data = inputs.experiment.data
    return contrasts.epsilon_table(inputs.epsilon, data.high.dataset, data.low.dataset)


def _table_contrasts(inputs: Inputs) -> pd.DataFrame:
    analysis = inputs.experiment.analysis
    return contrasts.contrast_table(inputs.calibration, inputs.preferences, inputs.scenarios,
                                    analysis.calibration.bootstrap_resamples, analysis.seed)


def _fig_uncertainty(inputs: Inputs) -> Any:
    return figures.uncertainty_figure(inputs.scores)


def _fig_clusters(inputs: Inputs) -> list[Path]:
    """The clustering stage's own t-SNE figure (``--tsne``), not drawn again: a list of its files."""
    if not inputs.args.tsne:
        raise ValueError("fig_clusters needs the t-SNE figure of the clustering stage (--tsne PNG PDF)")
    return inputs.args.tsne


def _fig_ablation(inputs: Inputs) -> Any:
    eps = inputs.experiment.epsilon
    return figures.ablation_figure(inputs.metrics, inputs.scenario, inputs.tasks, eps.eps_max,
                                   list(eps.ablation_eps_max))


def _fig_loss(inputs: Inputs) -> Any:
    return figures.loss_figure(collect.read_train_logs(inputs.args.train), inputs.scenarios)


def _fig_calibration(inputs: Inputs) -> Any:
    return figures.calibration_figure(collect.read_reliability(inputs.args.calibration), inputs.calibration,
                                      inputs.scenario)


def _fig_contrasts(inputs: Inputs) -> Any:
    return figures.contrast_figure(inputs.calibration, inputs.scenario)


# artifact name -> its builder: a table's frame, a figure's matplotlib figure (or the files it copies)
BUILDERS: dict[str, Callable[[Inputs], Any]] = {
    "table_main": _table_main,
    "table_ablation": _table_ablation,
    "table_crosscheck": _table_crosscheck,
    "table_clustering": _table_clustering,
    "table_calibration": _table_calibration,
    "table_uncertainty": _table_uncertainty,
    "table_epsilon": _table_epsilon,
    "table_contrasts": _table_contrasts,
    "fig_uncertainty": _fig_uncertainty,
    "fig_clusters": _fig_clusters,
    "fig_ablation": _fig_ablation,
    "fig_loss": _fig_loss,
    "fig_calibration": _fig_calibration,
    "fig_contrasts": _fig_contrasts,
}


def make_tables(args: argparse.Namespace) -> list[Path]:
    """Every table of ``ARTIFACTS``, in its order; the paths written."""
    inputs, written = Inputs(args), []
    for artifact in TABLES:
        table = BUILDERS[artifact.name](inputs)
        title = inputs.title(artifact)
        written += tables.write_table(table, args.out, artifact.name, title, inputs.provenance)
    return written


def make_figures(args: argparse.Namespace) -> list[Path]:
    """Every figure of ``ARTIFACTS``, in its order; the paths written."""
    inputs, written = Inputs(args), []
    for artifact in FIGURES:
        figure = BUILDERS[artifact.name](inputs)
        if isinstance(figure, list):
            written += figures.copy_figure(figure, args.out, artifact.name)
        else:
            written += figures.save_figure(figure, args.out, artifact.name, inputs.provenance)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write paper tables or figures from result files.")
    parser.add_argument("what", choices=("tables", "figures"))
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, nargs="+", required=True)
    parser.add_argument("--clustering", type=Path, nargs="+", required=True)
    parser.add_argument("--calibration", type=Path, nargs="+", required=True)
    parser.add_argument("--scores", type=Path, nargs="+", required=True, help="one scores file per source")
    parser.add_argument("--epsilon", type=Path, nargs="*", default=[],
                        help="epsilon files of the trained variants (table_epsilon)")
    parser.add_argument("--train", type=Path, nargs="*", default=[], help="training metrics (figures)")
    parser.add_argument("--tsne", type=Path, nargs="*", default=[], help="the t-SNE PNG and PDF (figures)")
    parser.add_argument("--reported", type=Path, default=REPORTED)
    parser.add_argument("--data-sources", type=Path, nargs="*", default=None, help="data records")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        written = make_tables(args) if args.what == "tables" else make_figures(args)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None
    for path in written:
        logger.info("wrote %s", path)
