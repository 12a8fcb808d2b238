"""Command line of ``ual.elicit``: score the samples of an experiment, or of any dataset, with one code path.

Commands::

    # the pipeline: every training sample of an experiment -> the scores file
    python -m ual.elicit --experiment experiments/tiny.yaml --out results/tiny/elicit/scores.jsonl [--cache F]
    python -m ual.elicit --experiment experiments/tiny.yaml --source entropy --out .../scores.entropy.jsonl
    python -m ual.elicit --experiment experiments/paper_llama2-7b.yaml --estimate     # the bill, no call

    # any dataset (JSONL / JSON / Parquet file, or a hub id): its rows plus uncertainty (and epsilon)
    python -m ual.elicit --input data.jsonl --out scored.jsonl --backend openai \\
        --base-url http://127.0.0.1:8080/v1 --model served-model [--eps-max 0.2] [--estimate]
    python -m ual.elicit --input data.parquet --out scored.jsonl --backend hf \\
        --model HuggingFaceTB/SmolLM2-135M-Instruct
    # per token (entropy, hf): lists over the trained model's completion tokens, for UALSFTTrainer
    python -m ual.elicit --input data.jsonl --out scored.jsonl --backend hf --model ELICITOR \\
        --source entropy --per-token --target-tokenizer TRAINED_MODEL --eps-max 0.2

Both modes build an ``ElicitConfig`` (from the experiment, or from the flags) and a list of records, then run
``ual.elicit.dataset.score_records`` (cache, resume, concurrency: ``ual.elicit.run``). The pipeline writes
``scores.jsonl`` (``ual.elicit.records.write_scores``); ``--input`` writes the input rows in order plus
``uncertainty`` (and, with ``--eps-max``, ``epsilon = eps_min + (eps_max - eps_min) * uncertainty``;
``ual.smoothing``). Only a successful run writes the sidecar ``<out>.meta.json`` (counts, paid requests,
cost); a stale one is removed first. Any missing sample fails the run with the counts by reason (after
writing the output, so the scored part is kept) unless ``on_missing`` is ``median`` (``--on-missing
median``): then a missing sample gets the median uncertainty (in the pipeline, ``ual.smoothing`` imputes it).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from ual.elicit.cache import ScoreCache
from ual.elicit.core import scores_identity
from ual.elicit.dataset import elicit_config, score_records, scored_rows
from ual.elicit.records import write_scores
from ual.provenance import sidecar_path
from ual.elicit.run import RunStats

__all__ = ["main", "training_union"]

logger = logging.getLogger(__name__)
SOURCES = ("verbalized", "entropy")


def training_union(data_cfg: Any) -> list[dict]:
    """Every training sample of an experiment once, in data order (mixed = high + low covers all)."""
    from ual.data import build_scenario

    records, seen = [], set()
    for record in build_scenario(data_cfg, "mixed"):
        if record["id"] not in seen:
            seen.add(record["id"])
            records.append(record)
    return records


def _counts(cfg: Any, cache: ScoreCache, rows: list[dict], stats: RunStats) -> dict:
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
        "read_from": {
            s: sum(r["read_from"] == s for r in rows) for s in sorted({str(r["read_from"]) for r in rows})
        },
        "cost_usd": stats.cost_usd,
        "seconds": round(stats.seconds, 3),
        "on_missing": cfg.on_missing,
    }


def _missing_message(stats: RunStats, n: int, out: Path, flag: str) -> str:
    reasons = (
        f"{stats.failed} requests failed after their retries, {stats.zero_mass} with no answer token among "
        f"the top logprobs, {stats.unparsed} replies without one integer 1..10"
    )
    return (
        f"error: {stats.missing} of {n} samples could not be scored (missing: {reasons}; first errors: "
        f"{stats.failures}); see {out}, or set {flag}"
    )


def _log_run(rows: list[dict], out: Path, stats: RunStats) -> None:
    logger.info(
        "wrote %d scores to %s (%d cached, %d scored, %d HTTP requests, %d missing, $%.4f)",
        len(rows),
        out,
        stats.cached,
        stats.requested,
        stats.http_requests,
        stats.missing,
        stats.cost_usd,
    )
    if stats.no_logprobs:
        logger.warning("%d samples scored from the reply text (no logprobs came back)", stats.no_logprobs)


def _experiment_config(args: argparse.Namespace) -> tuple[Any, Any, list[dict]]:
    """(experiment, its elicit config with ``--source`` applied, its training records)."""
    from ual.experiment import load_experiment

    experiment = load_experiment(args.experiment)
    if args.source is not None:  # a source the experiment scores (Experiment.scored_sources), else an error
        experiment = experiment.model_copy(update={"elicit": experiment.elicit_for(args.source)})
    return experiment, experiment.elicit, training_union(experiment.data) if not args.estimate else []


def _flag_config(args: argparse.Namespace) -> Any:
    """The ``ElicitConfig`` of ``--input`` mode, from the flags."""
    if args.backend is None or args.model is None:
        raise ValueError("--input needs --backend and --model (and --base-url for a local openai server)")
    return elicit_config(
        args.backend,
        args.model,
        source=args.source or "verbalized",
        on_missing=args.on_missing,
        revision=args.revision,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        prompt_version=args.prompt_version,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        per_token=args.per_token,
        target_tokenizer=args.target_tokenizer,
        tokenizer=args.tokenizer,
        cache_dir=str(args.cache_dir),
        usd_per_1m_input_tokens=args.usd_per_1m_input_tokens,
        usd_per_1m_output_tokens=args.usd_per_1m_output_tokens,
    )


def _input_records(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """(input rows, their elicitation records)."""
    from ual.elicit.dataset import ColumnNames, dataset_name, read_rows, to_records

    names = ColumnNames(**{k: getattr(args, f"{k}_column") for k in ColumnNames.__dataclass_fields__})
    rows = read_rows(args.input, args.split)
    return rows, to_records(rows, names, dataset_name(args.input), args.input)


def _print_estimate(cfg: Any, experiment: Any, records: list[dict], name: str) -> None:
    from ual.elicit.estimate import estimate_bill, estimate_records_bill, format_bill

    bill = estimate_bill(experiment) if experiment is not None else estimate_records_bill(cfg, records, name)
    print(format_bill(bill))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Elicit an uncertainty score for every sample of a dataset.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--experiment", type=Path, help="score an experiment's training samples (the pipeline)")
    what.add_argument("--input", help="score any dataset: a .jsonl/.json/.parquet file or a hub dataset id")
    parser.add_argument(
        "--out", type=Path, default=None, help="file to write (the scores, or the scored rows)"
    )
    parser.add_argument("--cache", type=Path, default=None, help="cache JSONL (default: in the cache dir)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--estimate", action="store_true", help="print the bill; no request")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default=None,
        help="the uncertainty source; with --experiment one of elicit.method, "
        "analysis.compare_uncertainty or epsilon.source",
    )
    flags = parser.add_argument_group("--input mode: the elicitor, the mapping and the column names")
    flags.add_argument("--backend", choices=("hf", "openai"))
    flags.add_argument("--model", help="hf: hub id / path / package:...; openai: the served model name")
    flags.add_argument("--revision", default=None)
    flags.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (a local server)")
    flags.add_argument(
        "--api-key-env", default=None, help="name of the environment variable with the API key"
    )
    flags.add_argument("--prompt-version", default="v1")
    flags.add_argument("--on-missing", choices=("fail", "median"), default="fail")
    flags.add_argument("--concurrency", type=int, default=8)
    flags.add_argument("--batch-size", type=int, default=8)
    flags.add_argument("--tokenizer", default=None, help="HF tokenizer of the served model (for --estimate)")
    flags.add_argument("--cache-dir", type=Path, default=Path("resources/cache/elicit"))
    flags.add_argument("--usd-per-1m-input-tokens", type=float, default=0.0)
    flags.add_argument("--usd-per-1m-output-tokens", type=float, default=0.0)
    flags.add_argument(
        "--per-token",
        action="store_true",
        help="with --source entropy: uncertainty (and epsilon) as a list over the completion's tokens",
    )
    flags.add_argument(
        "--target-tokenizer",
        default=None,
        help="--per-token: the trained model's tokenizer (default: the elicitor's)",
    )
    flags.add_argument("--eps-max", type=float, default=None, help="also write epsilon, linear up to this")
    flags.add_argument("--eps-min", type=float, default=0.0)
    flags.add_argument("--split", default="train", help="split of a hub dataset")
    for role in ("instruction", "input", "output", "prompt", "completion", "messages"):
        flags.add_argument(f"--{role}-column", default=role, help=f"column of the {role} (default {role})")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.out is None and not args.estimate:
        parser.error("--out is required (or --estimate)")
    if args.experiment is not None and (args.per_token or args.target_tokenizer):
        parser.error("--per-token is for --input (the pipeline smooths per sample)")
    logging.basicConfig(
        level=logging.INFO if not args.estimate else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from ual.config import ConfigError
    from ual.data import DataError
    from ual.elicit.dataset import dataset_name
    from ual.provenance import write_text_atomic

    meta_path = sidecar_path(args.out) if args.out else None
    if meta_path is not None and not args.estimate:
        meta_path.unlink(missing_ok=True)  # a sidecar only ever describes a successful run
    try:
        if args.experiment is not None:
            experiment, cfg, records = _experiment_config(args)
            rows = None
        else:
            if args.eps_max is not None and not 0.0 <= args.eps_min <= args.eps_max < 1.0:
                raise ValueError(f"need 0 <= --eps-min <= --eps-max < 1, got {args.eps_min}, {args.eps_max}")
            experiment, cfg = None, _flag_config(args)
            rows, records = _input_records(args)
        if args.estimate:
            return _print_estimate(cfg, experiment, records, dataset_name(args.input or ""))
        scores, stats, normaliser, cache = score_records(records, cfg, args.cache, not args.no_progress)
    except (ConfigError, DataError, ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    if rows is None:
        write_scores(args.out, scores)
    else:
        eps = (args.eps_min, args.eps_max) if args.eps_max is not None else None
        lines = scored_rows(rows, scores, cfg.on_missing, eps)
        write_text_atomic(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
    _log_run(scores, args.out, stats)
    if stats.missing and cfg.on_missing == "fail":
        flag = "elicit.on_missing: median" if rows is None else "--on-missing median"
        raise SystemExit(_missing_message(stats, len(scores), args.out, flag))
    meta = _counts(cfg, cache, scores, stats) | normaliser
    meta |= _experiment_meta(experiment) if experiment is not None else {"input": args.input}
    write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")


def _experiment_meta(experiment: Any) -> dict:
    from ual.config import resolved_config
    from ual.provenance import run_metadata

    return {
        "elicit_config": resolved_config(experiment)["elicit"],
        "provenance": run_metadata(stage="elicit", experiment=experiment.name),
    }
