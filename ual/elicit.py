"""Uncertainty elicitation: an elicitor LLM rates every training sample 1..10 (docs/method.md, "Elicitation").

Inputs: the experiment YAML (``data`` for the samples: the union of the high and low slices, which covers
every scenario; ``elicit`` for the backend) and the versioned prompt
``ual/prompts/elicit_uncertainty_<v>.txt``.
Outputs: ``scores.jsonl``, one record per sample in data order,
``{key, id, dataset, prompt_version, elicitor, raw, score, uncertainty, missing, seconds, cost_usd, error}``
with score in [1, 10] (null if missing) and uncertainty = (score - 1) / 9, plus ``scores.jsonl.meta.json``
(counts, requests made, cost, provenance). Command::

    python -m ual.elicit --experiment experiments/tiny.yaml --out results/tiny/elicit/scores.jsonl [--cache F]

Backends (``ELICITORS``; add one = one factory ``ElicitConfig -> Elicitor`` and a registry line):
- ``openai``: any OpenAI-compatible chat endpoint (``base_url``); key read only from the env variable named
  by ``api_key_env``; ``concurrency`` requests in flight (threads); tenacity retries with exponential backoff
  on 429, 5xx, timeouts and connection errors. Greedy (temperature 0). When the first reply token is a
  number 1..10 and top log-probabilities come back, the score is the expected value over the number tokens
  among them (renormalised); otherwise the integer parsed by ``parse_uncertainty``. OpenAI tokenizers have
  "10" as one token; on digit-splitting endpoints a reply of "10" falls back to the parsed integer.
- ``hf``: a local transformers model, same prompt through its chat template (plain text if it has none),
  batched with left padding; score = probability-weighted expected value over the answers 1..10 at the first
  answer position. Answers whose text is one token ("1".."9", and "10" where the vocabulary has it) read
  their probability there; where "10" is split into "1" + "0" (SmolLM2, Llama), the "1" token is appended
  in the same forward pass and P(10) = P("1") * P("0" | "1"), P(1) = P("1") * (1 - P("0" | "1")).
  Such a model always yields a score; it is never parsed.

Cache: ``<elicit.cache_dir>/<elicitor>_<prompt_version>.jsonl`` (or ``--cache``), keyed by
sha256(sample id, prompt version, elicitor); the sample id is itself the content hash of the sample.
One line is appended, flushed and fsync'ed per finished sample, so a killed run loses only the requests in
flight, and a rerun sends no request for a cached key. A truncated last line (killed mid-write) is dropped
and the file repaired on load. Unparseable replies are cached as missing (a greedy rerun would repeat
them); requests that failed after all retries are reported as missing but not cached, so a rerun retries
them. Any missing sample fails the run with the count unless ``elicit.on_missing: median``
(``ual.smoothing`` then gives it the median uncertainty).

Changelog: v1 - initial (prompt elicit_uncertainty_v1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ual.config import ElicitConfig
from ual.prompts import load_prompt
from ual.provenance import write_text_atomic

__all__ = [
    "ELICITORS",
    "Reply",
    "ScoreCache",
    "build_elicit_prompt",
    "elicit_scores",
    "elicitor_name",
    "expected_score",
    "parse_uncertainty",
]

logger = logging.getLogger(__name__)
ANSWERS = tuple(str(k) for k in range(1, 11))


# --------------------------------------------------------------------------- pure core


def build_elicit_prompt(record: dict, version: str) -> str:
    """The elicitation prompt for one record (instruction, input or "(none)", response)."""
    template = load_prompt(f"elicit_uncertainty_{version}").rstrip()
    return template.format(
        instruction=record["instruction"], input=record["input"] or "(none)", output=record["output"]
    )


_SCALE = re.compile(r"\b1\s*(?:-|–|to)\s*10\b|(?:/|out of)\s*10\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w|\.\d)")


def parse_uncertainty(reply: str) -> int | None:
    """The one integer 1..10 a reply states, ignoring a restated scale ("1-10", "/10"); else None.

    >>> parse_uncertainty("7")
    7
    >>> parse_uncertainty("Uncertainty score: 10.")
    10
    >>> parse_uncertainty("I would rate it 3/10 on the 1-10 scale.")
    3
    >>> parse_uncertainty("3 or 4") is None, parse_uncertainty("11") is None, parse_uncertainty("") is None
    (True, True, True)
    """
    values = {float(n) for n in _NUMBER.findall(_SCALE.sub(" ", reply))}
    if len(values) != 1:
        return None
    (value,) = values
    return int(value) if value.is_integer() and 1 <= value <= 10 else None


def expected_score(probabilities: dict[str, float]) -> float | None:
    """Expected value of the answers "1".."10" under their (renormalised) probabilities; None if no mass.

    >>> expected_score({"1": 0.25, "10": 0.25, "hello": 0.5})
    5.5
    """
    mass = {k: p for k, p in probabilities.items() if k in ANSWERS and p > 0}
    total = sum(mass.values())
    if total <= 0:
        return None
    return sum(int(k) * p for k, p in mass.items()) / total


def cache_key(sample_id: str, prompt_version: str, elicitor: str) -> str:
    """sha256 of (sample content hash, prompt version, elicitor model)."""
    return hashlib.sha256(json.dumps([sample_id, prompt_version, elicitor]).encode()).hexdigest()


def elicitor_name(cfg: ElicitConfig) -> str:
    """``<backend>:<model>[@revision]``, the elicitor part of the cache key."""
    return f"{cfg.backend}:{cfg.model}" + (f"@{cfg.revision}" if cfg.revision else "")


# --------------------------------------------------------------------------- cache


class ScoreCache:
    """Append-only JSONL of score records keyed by ``key``; the last record of a key wins."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a line cut by a kill: drop it so the next append starts on a fresh line
            logger.warning("%s: dropping a truncated last line (%d bytes)", self.path, len(data) - end)
            with self.path.open("r+b") as handle:
                handle.truncate(end)
        for number, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self.records[record["key"]] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(
                    f"{self.path}: line {number} is not a score record; "
                    "the cache is corrupt beyond a truncated last line"
                ) from None

    def get(self, key: str) -> dict | None:
        record = self.records.get(key)
        return None if record is None or record.get("error") else record  # failed requests are retried

    def append(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.records[record["key"]] = record


# --------------------------------------------------------------------------- orchestration


@dataclass
class Reply:
    """What a backend returns for one prompt."""

    raw: str
    score: float | None
    cost_usd: float = 0.0
    error: str | None = None  # set when the request itself failed after the retries


class Elicitor(Protocol):
    name: str
    batch_size: int  # prompts per call of score()
    concurrency: int  # calls in flight

    def score(self, prompts: list[str]) -> list[Reply]: ...


@dataclass
class RunStats:
    requested: int = 0
    cached: int = 0
    missing: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def elicit_scores(
    records: list[dict], elicitor: Elicitor, cache: ScoreCache, prompt_version: str, progress: bool = True
) -> tuple[list[dict], RunStats]:
    """Score every record (cached ones are not sent again); returns score records in ``records`` order."""
    from tqdm.auto import tqdm

    stats, start = RunStats(), time.perf_counter()
    keys = [cache_key(r["id"], prompt_version, elicitor.name) for r in records]
    pending = [(k, r) for k, r in zip(keys, records, strict=True) if cache.get(k) is None]
    if elicitor.batch_size > 1:  # similar lengths per batch: less padding (results keep ``records`` order)
        pending.sort(
            key=lambda item: len(item[1]["instruction"]) + len(item[1]["input"]) + len(item[1]["output"])
        )
    stats.cached, stats.requested = len(records) - len(pending), len(pending)
    logger.info(
        "%s: %d samples, %d cached, %d to score", elicitor.name, len(records), stats.cached, len(pending)
    )
    fresh: dict[str, dict] = {}

    def run(batch: list[tuple[str, dict]]) -> tuple[list[tuple[str, dict]], list[Reply], float]:
        began = time.perf_counter()
        replies = elicitor.score([build_elicit_prompt(r, prompt_version) for _, r in batch])
        return batch, replies, (time.perf_counter() - began) / len(batch)

    bar = tqdm(total=len(pending), desc=f"elicit {elicitor.name}", unit="sample", disable=not progress)
    pool = ThreadPoolExecutor(max_workers=elicitor.concurrency)
    try:
        futures = [pool.submit(run, b) for b in _batches(pending, elicitor.batch_size)]
        for future in as_completed(futures):
            batch, replies, seconds = future.result()
            for (key, record), reply in zip(batch, replies, strict=True):
                row = _score_record(key, record, prompt_version, elicitor.name, reply, seconds)
                if reply.error is None:
                    cache.append(row)
                fresh[key] = row
                stats.cost_usd += reply.cost_usd
            bar.update(len(batch))
            bar.set_postfix(cost=f"${stats.cost_usd:.4f}")
    except BaseException:  # Ctrl-C or a backend crash: drop the queue instead of draining it
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    bar.close()
    rows = [fresh.get(k) or cache.get(k) for k in keys]
    stats.missing = sum(row["missing"] for row in rows)
    stats.failures = [row["error"] for row in rows if row.get("error")][:5]
    stats.seconds = time.perf_counter() - start
    return rows, stats


def _score_record(key: str, record: dict, version: str, name: str, reply: Reply, seconds: float) -> dict:
    score = reply.score if reply.score is not None and math.isfinite(reply.score) else None
    if score is not None and not 1.0 <= score <= 10.0:
        score = None
    return {
        "key": key,
        "id": record["id"],
        "dataset": record["dataset"],
        "prompt_version": version,
        "elicitor": name,
        "raw": reply.raw,
        "score": score,
        "uncertainty": None if score is None else (score - 1.0) / 9.0,
        "missing": score is None,
        "seconds": round(seconds, 4),
        "cost_usd": reply.cost_usd,
        "error": reply.error,
    }


# --------------------------------------------------------------------------- backends


def _hf_elicitor(cfg: ElicitConfig) -> Elicitor:
    import torch

    from ual.elicit_backends import HFElicitor
    from ual.models import load_model

    model, tokenizer = load_model(cfg.model, revision=cfg.revision)
    if torch.cuda.is_available():
        model = model.cuda()
    return HFElicitor(model, tokenizer, batch_size=cfg.batch_size, name=elicitor_name(cfg))


def _openai_elicitor(cfg: ElicitConfig) -> Elicitor:
    from ual.elicit_backends import OpenAIElicitor

    return OpenAIElicitor(cfg, name=elicitor_name(cfg))


ELICITORS: dict[str, Callable[[ElicitConfig], Elicitor]] = {"hf": _hf_elicitor, "openai": _openai_elicitor}


# --------------------------------------------------------------------------- CLI


def _union(data_cfg: Any) -> list[dict]:
    from ual.data import build_scenario

    records, seen = [], set()
    for record in build_scenario(data_cfg, "mixed"):  # mixed = high + low covers every scenario
        if record["id"] not in seen:
            seen.add(record["id"])
            records.append(record)
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Elicit an uncertainty score for every training sample.")
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--cache", type=Path, default=None, help="cache JSONL (default under elicit.cache_dir)"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from ual.config import ConfigError, load_experiment, resolved_config
    from ual.data import DataError
    from ual.provenance import run_metadata

    try:
        experiment = load_experiment(args.experiment)
        cfg = experiment.elicit
        records = _union(experiment.data)
        name = elicitor_name(cfg)
        safe = re.sub(r"[^A-Za-z0-9.\-]+", "_", name)
        cache = ScoreCache(args.cache or Path(cfg.cache_dir) / f"{safe}_{cfg.prompt_version}.jsonl")
        rows, stats = elicit_scores(
            records, ELICITORS[cfg.backend](cfg), cache, cfg.prompt_version, progress=not args.no_progress
        )
    except (ConfigError, DataError, ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    write_text_atomic(args.out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    meta = {
        "elicitor": name,
        "prompt_version": cfg.prompt_version,
        "cache": str(cache.path),
        "n": len(rows),
        "n_cached": stats.cached,
        "n_requested": stats.requested,
        "n_missing": stats.missing,
        "cost_usd": stats.cost_usd,
        "seconds": round(stats.seconds, 3),
        "on_missing": cfg.on_missing,
        "elicit_config": resolved_config(experiment)["elicit"],
        "provenance": run_metadata(stage="elicit", experiment=experiment.name),
    }
    write_text_atomic(args.out.with_name(args.out.name + ".meta.json"), json.dumps(meta, indent=2) + "\n")
    logger.info(
        "wrote %d scores to %s (%d cached, %d requested, %d missing, $%.4f)",
        len(rows),
        args.out,
        stats.cached,
        stats.requested,
        stats.missing,
        stats.cost_usd,
    )
    if stats.missing and cfg.on_missing == "fail":
        raise SystemExit(
            f"error: {stats.missing} of {len(rows)} samples could not be scored (missing; first "
            f"errors: {stats.failures}); see {args.out}, or set elicit.on_missing: median"
        )


if __name__ == "__main__":
    main()
