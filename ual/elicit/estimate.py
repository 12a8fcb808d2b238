"""The elicitation bill before paying it: requests, prompt and completion tokens, and cost, with no API call.

Command::

    python -m ual.elicit --experiment experiments/paper_llama2-7b.yaml --estimate

How each number is obtained (printed with it, so the estimate says which it is):
- samples: the experiment's training slices, loaded (exact, minus what the cache already holds); a slice
  that cannot be loaded here (not in the mirror, no hub) counts ``size`` samples, or the dataset's
  published size (``PUBLISHED_SIZES``) when ``size`` is null, and its prompt tokens are the mean over
  ``STAND_IN_SAMPLE`` records of a stand-in set in the mirror (``STAND_INS``): an approximation;
- tokens: the served model's tokenizer when known (``elicit.tokenizer``, or the hf elicitor's own), with the
  prompt rendered by its chat template; otherwise ``len(prompt) / CHARS_PER_TOKEN`` plus
  ``CHAT_OVERHEAD_TOKENS`` per request (OpenAI's chat format), an approximation (tiktoken's encodings are
  not available offline);
- requests: one per sample to score; with ``ten_continuation`` at most one more per sample (a reply that did
  not begin with "1" while "1" was probable; 11 of the 32 tiny samples against llama.cpp);
- completion tokens: at most ``max_tokens`` per first request and 1 per continuation (the reply is one
  integer: GPT-4 stops after 1-2 tokens), so the output cost is an upper bound;
- cost: tokens x ``usd_per_1m_input_tokens`` / ``usd_per_1m_output_tokens`` of the experiment.

"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from ual.elicit.core import (
    build_elicit_prompt,
    cache_key,
    cache_path,
    elicitor_name,
    scorer_name,
    ten_continuation,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "PUBLISHED_SIZES",
    "STAND_INS",
    "estimate_bill",
    "estimate_records_bill",
    "format_bill",
]

logger = logging.getLogger(__name__)
CHARS_PER_TOKEN = 4.0  # English text under GPT-style BPE vocabularies (OpenAI's rule of thumb)
CHAT_OVERHEAD_TOKENS = 7  # per request: role and priming tokens of OpenAI's chat format
STAND_IN_SAMPLE = 500
# Published sizes of the training sets the paper profiles use in full (size: null); from their dataset cards.
PUBLISHED_SIZES = {"alpaca_gpt4": 52_002, "alpaca": 52_002, "metamathqa": 395_000, "math": 7_500}
# Mirror sets whose records resemble them (token counts only): Alpaca-GPT4-style demo rows, GSM8K solutions
STAND_INS = {
    "alpaca_gpt4": ("alpaca_gpt4_demo", "train"),
    "alpaca": ("alpaca_gpt4_demo", "train"),
    "metamathqa": ("gsm8k", "train"),
    "math": ("math", "test"),
}


def _token_counter(cfg: Any) -> tuple[Callable[[str], int], str]:
    """A prompt -> request prompt tokens function and how it counts."""
    source = cfg.tokenizer or (cfg.model if cfg.backend == "hf" else None)
    if source is not None:
        from ual.elicit.hf import render_chat
        from ual.models import load_tokenizer

        try:
            tokenizer = load_tokenizer(source, cfg.revision if source == cfg.model else None)
        except (OSError, ValueError) as exc:  # not downloaded and no hub: say so, then approximate
            reason = str(exc).split("\n")[0]
            logger.warning("tokenizer of %s not available (%s); approximating", source, reason)
            source = None
    if source is not None:

        def count(prompt: str) -> int:
            return len(tokenizer(render_chat(tokenizer, prompt), add_special_tokens=False)["input_ids"])

        return count, f"counted with the tokenizer of {source}, chat template applied"

    def approximate(prompt: str) -> int:
        return math.ceil(len(prompt) / CHARS_PER_TOKEN) + CHAT_OVERHEAD_TOKENS

    return approximate, f"approximated: characters / {CHARS_PER_TOKEN:g} + {CHAT_OVERHEAD_TOKENS} per request"


def _slice(data_cfg: Any, part: str, count: Callable[[str], int], version: str) -> dict:
    """Samples and prompt tokens of one training slice (loaded, else published size and a stand-in)."""
    from ual.data import DataError, load_records, subsample

    spec = getattr(data_cfg, part)
    name = f"{spec.dataset}/{spec.split}"
    try:
        records = subsample(load_records(spec.dataset, spec.split, data_cfg.mirror), spec.size, data_cfg.seed)
    except DataError as exc:
        logger.info("%s cannot be loaded here (%s); estimating", name, str(exc).split(";")[0])
        n = spec.size if spec.size is not None else PUBLISHED_SIZES.get(spec.dataset)
        if n is None or spec.dataset not in STAND_INS:
            raise ValueError(f"{name} cannot be loaded and has no published size or stand-in") from None
        stand_in = STAND_INS[spec.dataset]
        pool = load_records(*stand_in, data_cfg.mirror)
        sample = subsample(pool, min(STAND_IN_SAMPLE, len(pool)), data_cfg.seed)
        mean = sum(count(build_elicit_prompt(r, version)) for r in sample) / len(sample)
        how = "published size" if spec.size is None else "configured size"
        return {
            "slice": name,
            "n": n,
            "records": None,
            "prompt_tokens": round(mean * n),
            "how": f"not loadable here: {how} {n:,}, prompt tokens = {n:,} x the mean {mean:.0f} over "
            f"{len(sample)} records of the stand-in {'/'.join(stand_in)}",
        }
    tokens = sum(count(build_elicit_prompt(r, version)) for r in records)
    return {"slice": name, "n": len(records), "records": records, "prompt_tokens": tokens, "how": "loaded"}


def estimate_bill(experiment: Any) -> dict:
    """The bill of ``python -m ual.elicit`` for ``experiment`` (see the module docstring); no API call.

    Minimum: one request per sample to score, one completion token each. Maximum: a continuation for every
    sample (prompt sent twice, one more completion token) and ``max_tokens`` per first reply.
    """
    cfg = experiment.elicit
    count, counted_by = _token_counter(cfg)
    slices = [_slice(experiment.data, part, count, cfg.prompt_version) for part in ("high", "low")]
    return _bill(cfg, slices, count, counted_by)


def estimate_records_bill(cfg: Any, records: list[dict], name: str) -> dict:
    """The bill of ``python -m ual.elicit --input`` for its ``records`` under the elicitor ``cfg``."""
    count, counted_by = _token_counter(cfg)
    tokens = sum(count(build_elicit_prompt(r, cfg.prompt_version)) for r in records)
    part = {"slice": name, "n": len(records), "records": records, "prompt_tokens": tokens, "how": "loaded"}
    return _bill(cfg, [part], count, counted_by)


def _bill(cfg: Any, slices: list[dict], count: Callable[[str], int], counted_by: str) -> dict:
    """Requests, tokens and cost of scoring ``slices`` (minus what the cache holds)."""
    from ual.elicit.cache import ScoreCache

    n = sum(s["n"] for s in slices)
    prompt_tokens = sum(s["prompt_tokens"] for s in slices)
    path, cached = cache_path(cfg), 0
    if path.exists():  # samples already paid for are not requested again
        cache, name, scorer = ScoreCache(path), elicitor_name(cfg), scorer_name(cfg)
        for part in slices:
            for r in part["records"] or []:
                if cache.get(cache_key(r["id"], cfg.prompt_version, name, scorer)) is not None:
                    cached += 1
                    prompt_tokens -= count(build_elicit_prompt(r, cfg.prompt_version))
    api, continued = cfg.backend == "openai", cfg.backend == "openai" and ten_continuation(cfg)
    requests = n - cached if api else 0
    low = (prompt_tokens, requests)  # (prompt, completion) tokens
    high = (prompt_tokens * (2 if continued else 1), requests * (cfg.max_tokens + (1 if continued else 0)))

    def cost(tokens: tuple[float, float]) -> float:
        usd = tokens[0] * cfg.usd_per_1m_input_tokens + tokens[1] * cfg.usd_per_1m_output_tokens
        return round(usd / 1e6, 2)

    return {
        "elicitor": elicitor_name(cfg),
        "scorer": scorer_name(cfg),
        "slices": [{k: v for k, v in s.items() if k != "records"} for s in slices],
        "local": not api,
        "n_samples": n,
        "n_cached": cached,
        "requests_min": requests,
        "requests_max": requests * (2 if continued else 1),
        "prompt_tokens": round(prompt_tokens),
        "prompt_tokens_max": round(high[0]),
        "completion_tokens_max": high[1],
        "tokens_counted_by": counted_by,
        "usd_per_1m_input_tokens": cfg.usd_per_1m_input_tokens,
        "usd_per_1m_output_tokens": cfg.usd_per_1m_output_tokens,
        "cost_usd_min": cost(low) if api else 0.0,
        "cost_usd_max": cost(high) if api else 0.0,
    }


def format_bill(bill: dict) -> str:
    """The estimate as the lines ``--estimate`` prints."""
    lines = [f"elicitation bill: {bill['elicitor']} ({bill['scorer']}), no request made"]
    for s in bill["slices"]:
        lines.append(f"  {s['slice']}: {s['n']:,} samples, {s['prompt_tokens']:,} prompt tokens ({s['how']})")
    lines += [
        f"  samples: {bill['n_samples']:,}, already cached: {bill['n_cached']:,}",
        f"  requests: {bill['requests_min']:,}" + (" (a local model: nothing paid)" if bill["local"] else "")
        + (
            f" to {bill['requests_max']:,} (a continuation after '1' where needed)"
            if bill["requests_max"] != bill["requests_min"]
            else ""
        ),
        f"  prompt tokens: {bill['prompt_tokens']:,} (at most {bill['prompt_tokens_max']:,}); "
        f"tokens {bill['tokens_counted_by']}",
        f"  completion tokens: at most {bill['completion_tokens_max']:,} (max_tokens per request; a reply is "
        "one integer, 1-2 tokens)",
        f"  cost: ${bill['cost_usd_min']:,.2f} to ${bill['cost_usd_max']:,.2f} at "
        f"${bill['usd_per_1m_input_tokens']:g} / ${bill['usd_per_1m_output_tokens']:g} per 1M input / output "
        "tokens",
    ]
    return "\n".join(lines)
