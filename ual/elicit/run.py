"""Score every record with an elicitor through the shared cache: concurrency, claims, progress, stats.

``elicit_scores(records, elicitor, cache, prompt_version)`` returns one score record per input record, in
input order: cached ones are not sent again; the others are claimed (``ScoreCache.claim``), scored in
batches of ``elicitor.batch_size`` with ``elicitor.concurrency`` calls in flight, and appended one line
each. A sample claimed by a concurrent run is deferred, then waited for and read from the cache (it is
scored here only if that run failed to). Ctrl-C or a crashing backend drops the queue; every finished
record is already on disk.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field

from ual.elicit.cache import ScoreCache
from ual.elicit.core import Elicitor, Reply, cache_key

__all__ = ["RunStats", "elicit_scores", "score_record"]

logger = logging.getLogger(__name__)


@dataclass
class RunStats:
    n: int = 0
    cached: int = 0  # already in the cache when the run started, or written meanwhile by a concurrent run
    requested: int = 0  # samples scored by this run
    http_requests: int = 0  # paid calls made by this run (continuations included)
    missing: int = 0
    failed: int = 0  # requests that failed after their retries (missing, not cached)
    zero_mass: int = 0  # logprobs came back but no answer token was among them (missing)
    unparsed: int = 0  # a text reply without one integer 1..10 (missing)
    no_logprobs: int = 0  # records scored from text although logprobs were asked for
    cost_usd: float = 0.0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def score_record(
    key: str, record: dict, version: str, elicitor: Elicitor, reply: Reply, seconds: float
) -> dict:
    """The score record (``ual.elicit.records``) of one sample from its backend reply."""
    score = reply.score if reply.score is not None and math.isfinite(reply.score) else None
    if elicitor.source == "verbalized" and score is not None and not 1.0 <= score <= 10.0:
        score = None
    uncertainty = None
    if score is not None and elicitor.source == "verbalized":
        uncertainty = (score - 1.0) / 9.0
    row = {
        "key": key,
        "id": record["id"],
        "dataset": record["dataset"],
        "prompt_version": version,
        "elicitor": elicitor.name,
        "source": elicitor.source,
        "scorer": elicitor.scorer,
        "raw": reply.raw,
        "score": score,
        "uncertainty": uncertainty,
        "missing": score is None,
        "read_from": reply.read_from,
        "probs": reply.probs,
        "answer_mass": reply.answer_mass,
        "requests": reply.requests,
        "seconds": round(seconds, 4),
        "cost_usd": reply.cost_usd,
        "error": reply.error,
    }
    if reply.token_scores is not None and score is not None:
        row["token_entropy"] = reply.token_scores
    return row


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def elicit_scores(
    records: list[dict], elicitor: Elicitor, cache: ScoreCache, prompt_version: str, progress: bool = True
) -> tuple[list[dict], RunStats]:
    """Score every record (cached ones are not sent again); returns score records in ``records`` order."""
    from tqdm.auto import tqdm

    stats, start = RunStats(n=len(records)), time.perf_counter()
    keys = [cache_key(r["id"], prompt_version, elicitor.name, elicitor.scorer) for r in records]
    pending = [(k, r) for k, r in zip(keys, records, strict=True) if cache.get(k) is None]
    if elicitor.batch_size > 1:  # similar lengths per batch: less padding (results keep ``records`` order)
        pending.sort(
            key=lambda item: len(item[1]["instruction"]) + len(item[1]["input"]) + len(item[1]["output"])
        )
    logger.info(
        "%s: %d samples, %d cached, %d to score", elicitor.name, len(records), len(records) - len(pending),
        len(pending),
    )
    fresh: dict[str, dict] = {}

    def run(batch: list[tuple[str, dict]], wait: bool) -> tuple[list, list, list[Reply], float]:
        """Claim and score one batch; returns (deferred items, scored items, replies, seconds/sample)."""
        with ExitStack() as claims:
            ordered = sorted(batch, key=lambda item: cache.stripe(item[0]))  # one lock order: no deadlock
            mine = [item for item in ordered if claims.enter_context(cache.claim(item[0], wait))]
            deferred = [item for item in batch if item not in mine]
            cache.refresh()  # a concurrent run may have finished some while we waited
            todo = [item for item in mine if cache.get(item[0]) is None]
            if not todo:
                return deferred, [], [], 0.0
            began = time.perf_counter()
            replies = elicitor.score([elicitor.build_input(r, prompt_version) for _, r in todo])
            seconds = (time.perf_counter() - began) / len(todo)
            for (key, record), reply in zip(todo, replies, strict=True):
                row = score_record(key, record, prompt_version, elicitor, reply, seconds)
                fresh[key] = cache.append(row) if reply.error is None else row
            return deferred, todo, replies, seconds

    bar = tqdm(total=len(pending), desc=f"elicit {elicitor.name}", unit="sample", disable=not progress)
    pool = ThreadPoolExecutor(max_workers=elicitor.concurrency)
    try:
        queue, wait = pending, False
        while queue:  # pass 1 skips samples claimed elsewhere; pass 2 waits for their claims
            futures = [pool.submit(run, b, wait) for b in _batches(queue, elicitor.batch_size)]
            deferred = []
            for future in as_completed(futures):
                later, done, replies, _ = future.result()
                deferred += later
                stats.requested += len(done)
                for reply in replies:
                    stats.cost_usd += reply.cost_usd
                    stats.http_requests += reply.requests
                bar.update(len(done) + (len(later) if wait else 0))
                bar.set_postfix(cost=f"${stats.cost_usd:.4f}")
            if deferred:
                logger.info("%d samples are claimed by a concurrent run; waiting for them", len(deferred))
            queue, wait = deferred, True
    except BaseException:  # Ctrl-C or a backend crash: drop the queue instead of draining it
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    bar.close()
    cache.refresh()
    rows = [fresh.get(k) or cache.get(k) for k in keys]
    stats.cached = len(records) - stats.requested
    stats.missing = sum(row["missing"] for row in rows)
    stats.failed = sum(bool(row["error"]) for row in rows)
    stats.zero_mass = sum(row["missing"] and row["read_from"] == "logprobs" for row in rows)
    stats.unparsed = sum(row["missing"] and not row["error"] and row["read_from"] == "text" for row in rows)
    stats.no_logprobs = sum(
        row["read_from"] == "text" and getattr(elicitor, "wants_logprobs", False) for row in rows
    )
    stats.failures = [row["error"] for row in rows if row["error"]][:5]
    stats.seconds = time.perf_counter() - start
    return rows, stats
