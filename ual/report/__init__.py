"""Report stage: ``paper_tables/<exp>/`` and ``figures/<exp>/`` from result files only (no model, no judge).

Inputs: the experiment file and the result files the workflow lists (evaluate metrics, clustering and
calibration JSON, training logs, elicited scores: one file, or one per elicitation method), plus
``resources/paper_reported.csv`` (the paper's reported numbers, the only
hand-entered numbers in the project). Outputs: see ``ual.report.tables`` and ``ual.report.figures``.
``--data-sources``: the data records of ``ual.inputs`` (results/<exp>/data/*.json), carried into provenance.

    python -m ual.report tables --experiment experiments/tiny.yaml --metrics results/tiny/seed0/evaluate/*/*/*.json \\
        --clustering results/tiny/seed0/analysis/*/clustering.json \\
        --calibration results/tiny/seed0/analysis/*/calibration.json --scores results/tiny/elicit/scores.jsonl \\
        --out paper_tables/tiny
    python -m ual.report figures ... --train results/tiny/seed0/train/*/*/train_metrics.json --out figures/tiny
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from ual.experiment import load_experiment
from ual.report import collect, figures, tables
from ual.variants import ablation_scenario

logger = logging.getLogger(__name__)

REPORTED = Path(__file__).resolve().parents[2] / "resources" / "paper_reported.csv"


def _data_sources(args: argparse.Namespace) -> list[dict] | None:
    from ual.inputs import read_sources_records

    return read_sources_records(args.data_sources) if args.data_sources else None


def make_tables(args: argparse.Namespace) -> list[Path]:
    experiment = load_experiment(args.experiment)
    metrics = collect.read_metrics(args.metrics)
    provenance = collect.provenance_summary(metrics, experiment, data_sources=_data_sources(args))
    reported = pd.read_csv(args.reported)
    tasks, scenarios = list(experiment.evaluate.tasks), list(experiment.data.scenarios)
    eps = experiment.epsilon
    written = []
    built = {
        "table_main": ("Main results: scenario x method (percent)",
                       tables.main_table(metrics, reported, scenarios, tasks)),
        "table_ablation": (f"Ablation on the {ablation_scenario(scenarios)} scenario (percent)",
                           tables.ablation_table(metrics, ablation_scenario(scenarios), tasks, eps.eps_max,
                                                 list(eps.ablation_eps_max))),
        "table_crosscheck": ("GSM8K: the same generations under four scorers (percent)",
                             tables.crosscheck_table(collect.read_crosscheck(args.metrics), scenarios)),
        "table_clustering": ("Token clustering of hidden states by target token",
                             tables.clustering_table(collect.read_clustering(args.clustering))),
        "table_calibration": ("Teacher-forced likelihood and calibration of held-out references "
                              "(mean over seeds; 95 % sample-bootstrap intervals of the first seed; "
                              "differences paired)",
                              tables.calibration_table(collect.read_calibration(args.calibration), scenarios)),
        "table_uncertainty": ("Elicited uncertainty by dataset and source",
                              tables.uncertainty_table(collect.read_scores(args.scores))),
    }
    for name, (title, table) in built.items():
        written += tables.write_table(table, args.out, name, title, provenance)
    return written


def make_figures(args: argparse.Namespace) -> list[Path]:
    experiment = load_experiment(args.experiment)
    metrics = collect.read_metrics(args.metrics)
    provenance = collect.provenance_summary(metrics, experiment, data_sources=_data_sources(args))
    eps, scenario = experiment.epsilon, ablation_scenario(list(experiment.data.scenarios))
    written = figures.save_figure(figures.uncertainty_figure(collect.read_scores(args.scores)), args.out,
                                  "fig_uncertainty", provenance)
    cluster_dir = next((Path(p).parent for p in args.clustering if Path(p).parent.name == scenario), None)
    if cluster_dir is None:
        raise ValueError(f"no clustering result for the {scenario} scenario among --clustering")
    written += figures.copy_cluster_figure(cluster_dir, args.out, "fig_clusters")
    written += figures.save_figure(
        figures.ablation_figure(metrics, scenario, list(experiment.evaluate.tasks), eps.eps_max,
                                list(eps.ablation_eps_max)), args.out, "fig_ablation", provenance)
    written += figures.save_figure(
        figures.loss_figure(collect.read_train_logs(args.train), list(experiment.data.scenarios)), args.out,
        "fig_loss", provenance)
    written += figures.save_figure(
        figures.calibration_figure(collect.read_reliability(args.calibration),
                                   collect.read_calibration(args.calibration), scenario),
        args.out, "fig_calibration", provenance)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write paper tables or figures from result files.")
    parser.add_argument("what", choices=("tables", "figures"))
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, nargs="+", required=True)
    parser.add_argument("--clustering", type=Path, nargs="+", required=True)
    parser.add_argument("--calibration", type=Path, nargs="+", required=True)
    parser.add_argument("--scores", type=Path, nargs="+", required=True, help="one scores file per method")
    parser.add_argument("--train", type=Path, nargs="*", default=[])
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
