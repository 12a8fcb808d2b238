"""Command line of ``ual.elicit``: score every training sample of an experiment and write the scores file.

Command::

    python -m ual.elicit --experiment experiments/tiny.yaml --out results/tiny/elicit/scores.jsonl [--cache F]
    python -m ual.elicit --experiment experiments/paper_llama2-7b.yaml --estimate     # the bill, no call

Reads the experiment's ``data`` (the union of the high and low slices, which covers every scenario) and
``elicit`` sections; writes ``scores.jsonl`` (``ual.elicit.records.write_scores``) and, only when the run
succeeds, ``scores.jsonl.meta.json`` (counts, paid requests, cost, provenance); a stale sidecar is removed
first, so a failed run never leaves one. Any missing sample fails the run with the counts by reason unless
``elicit.on_missing: median``.

Changelog: v1 - initial (split out of ``ual/elicit.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from ual.elicit.cache import ScoreCache
from ual.elicit.core import cache_path
from ual.elicit.records import write_scores
from ual.elicit.registry import build_elicitor
from ual.elicit.run import RunStats, elicit_scores

__all__ = ["main", "training_union"]

logger = logging.getLogger(__name__)


def training_union(data_cfg: Any) -> list[dict]:
    """Every training sample of an experiment once, in data order (mixed = high + low covers all)."""
    from ual.data import build_scenario

    records, seen = [], set()
    for record in build_scenario(data_cfg, "mixed"):
        if record["id"] not in seen:
            seen.add(record["id"])
            records.append(record)
    return records


def _meta(experiment: Any, cache: ScoreCache, rows: list[dict], stats: RunStats) -> dict:
    from ual.config import resolved_config
    from ual.elicit.core import scores_identity
    from ual.provenance import run_metadata

    cfg = experiment.elicit
    return {
        **scores_identity(cfg),
        "cache": str(cache.path),
        "n": len(rows),
        "n_cached": stats.cached,
        "n_requested": stats.requested,
        "n_http_requests": stats.http_requests,
        "n_missing": stats.missing,
        "n_failed": stats.failed,
        "n_zero_answer_mass": stats.zero_mass,
        "n_unparsed": stats.unparsed,
        "n_no_logprobs": stats.no_logprobs,
        "sources": {s: sum(r["source"] == s for r in rows) for s in sorted({str(r["source"]) for r in rows})},
        "cost_usd": stats.cost_usd,
        "seconds": round(stats.seconds, 3),
        "on_missing": cfg.on_missing,
        "elicit_config": resolved_config(experiment)["elicit"],
        "provenance": run_metadata(stage="elicit", experiment=experiment.name),
    }


def _missing_message(stats: RunStats, n: int, out: Path) -> str:
    reasons = (
        f"{stats.failed} requests failed after their retries, {stats.zero_mass} with no answer token among "
        f"the top logprobs, {stats.unparsed} replies without one integer 1..10"
    )
    return (
        f"error: {stats.missing} of {n} samples could not be scored (missing: {reasons}; first errors: "
        f"{stats.failures}); see {out}, or set elicit.on_missing: median"
    )


def _print_estimate(path: Path) -> None:
    from ual.experiment import ConfigError, load_experiment
    from ual.data import DataError
    from ual.elicit.estimate import estimate_bill, format_bill

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        print(format_bill(estimate_bill(load_experiment(path))))
    except (ConfigError, DataError, ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Elicit an uncertainty score for every training sample.")
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None, help="scores.jsonl to write")
    parser.add_argument("--cache", type=Path, default=None, help="cache JSONL (default: elicit.cache_dir)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--estimate", action="store_true", help="print the bill; no request")
    parser.add_argument("--method", choices=("verbalized", "entropy"), default=None,
                        help="score with this method instead of elicit.method: a source of "
                        "analysis.compare_uncertainty or epsilon.source")
    args = parser.parse_args(argv)
    if args.estimate:
        return _print_estimate(args.experiment)
    if args.out is None:
        parser.error("--out is required (or --estimate)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from ual.experiment import ConfigError, load_experiment
    from ual.data import DataError
    from ual.provenance import write_text_atomic

    meta_path = args.out.with_name(args.out.name + ".meta.json")
    meta_path.unlink(missing_ok=True)  # a sidecar only ever describes a successful run
    try:
        experiment = load_experiment(args.experiment)
        if args.method is not None:  # a source the experiment scores (Experiment.scored_sources), else an error
            experiment = experiment.model_copy(update={"elicit": experiment.elicit_for(args.method)})
        cfg = experiment.elicit
        records = training_union(experiment.data)
        cache = ScoreCache(args.cache or cache_path(cfg))
        elicitor = build_elicitor(cfg)
        rows, stats = elicit_scores(records, elicitor, cache, cfg.prompt_version, not args.no_progress)
        normaliser: dict = {}
        if cfg.method == "entropy":  # uncertainty relative to this training set
            from ual.elicit.entropy import normalise_entropy

            rows, normaliser = normalise_entropy(rows)
    except (ConfigError, DataError, ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    write_scores(args.out, rows)
    logger.info(
        "wrote %d scores to %s (%d cached, %d scored, %d HTTP requests, %d missing, $%.4f)",
        len(rows),
        args.out,
        stats.cached,
        stats.requested,
        stats.http_requests,
        stats.missing,
        stats.cost_usd,
    )
    if stats.no_logprobs:
        logger.warning("%d samples scored from the reply text (no logprobs came back)", stats.no_logprobs)
    if stats.missing and cfg.on_missing == "fail":
        raise SystemExit(_missing_message(stats, len(rows), args.out))
    meta = _meta(experiment, cache, rows, stats) | normaliser
    write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
