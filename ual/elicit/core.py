"""Pure core of ``ual.elicit``: the prompt, reply parsing, the expected score, names and cache keys.

Everything here is a pure function of its arguments (no I/O apart from reading the versioned prompt
file), shared by every backend so that the ``hf`` and ``openai`` elicitors compute one quantity:

    score = sum_k k * P(k) / sum_k P(k),  k = 1..10,

with P(k) the elicitor's probability of answering k at the answer position (the first reply token),
counted only over the ``top_logprobs`` most probable tokens there (both backends truncate the same way,
because an OpenAI-compatible endpoint returns no more), and "10" written as one token or as "1" + "0":
P(10) = P("10") + P("1") P("0" | "1") and P(1) = P("1") (1 - P("0" | "1")) (``split_ten``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ual.config import ElicitConfig
from ual.prompts import load_prompt

__all__ = [
    "ANSWERS",
    "Elicitor",
    "Reply",
    "answer_mass",
    "answer_of",
    "build_elicit_prompt",
    "cache_key",
    "cache_path",
    "elicitor_name",
    "expected_score",
    "parse_uncertainty",
    "scorer_name",
    "scores_identity",
    "split_ten",
    "ten_continuation",
    "verbalized_scorer",
]

ANSWERS = tuple(str(k) for k in range(1, 11))
_SPACE_MARKERS = ("▁", "Ġ", " ")  # sentencepiece / byte-level BPE / decoded text


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


def answer_of(token: str) -> str | None:
    """The answer "1".."10" a token spells (one leading space marker allowed), else None.

    >>> answer_of("7"), answer_of("Ġ7"), answer_of(" 10"), answer_of("\\n7"), answer_of("The"), answer_of("0")
    ('7', '7', '10', None, None, None)
    """
    for marker in _SPACE_MARKERS:
        if token.startswith(marker):
            token = token[len(marker) :]
            break
    return token if token in ANSWERS else None


def answer_mass(alternatives: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Probability of each answer "1".."10" among (token, probability) alternatives at one position.

    >>> answer_mass([("1", 0.2), (" 1", 0.1), ("The", 0.5), ("9", 0.05)])["1"]
    0.30000000000000004
    """
    mass = dict.fromkeys(ANSWERS, 0.0)
    for token, probability in alternatives:
        answer = answer_of(token)
        if answer is not None:
            mass[answer] += probability
    return mass


def split_ten(mass: dict[str, float], p_zero: float) -> dict[str, float]:
    """Move the "1" + "0" continuation (P("0" | "1") = ``p_zero``) from answer 1 to answer 10.

    >>> split_ten({"1": 0.5, "9": 0.5, "10": 0.0}, 0.9)["10"]
    0.45
    """
    if not 0.0 <= p_zero <= 1.0:
        raise ValueError(f"P('0' | '1') = {p_zero} is not a probability")
    out = dict(mass)
    out["10"] = out.get("10", 0.0) + out.get("1", 0.0) * p_zero
    out["1"] = out.get("1", 0.0) * (1.0 - p_zero)
    return out


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


def elicitor_name(cfg: ElicitConfig) -> str:
    """``<backend>:<model>[@revision]``, the elicitor part of the cache key and of every score record."""
    return f"{cfg.backend}:{cfg.model}" + (f"@{cfg.revision}" if cfg.revision else "")


def ten_continuation(cfg: ElicitConfig) -> bool:
    """Whether the openai backend continues after "1" to read P("0" | "1") (null: on for a base_url)."""
    return cfg.base_url is not None if cfg.ten_continuation is None else cfg.ten_continuation


def verbalized_scorer(top_logprobs: int, ten_continued: bool = False) -> str:
    """The scorer name of the verbalized method (see ``scorer_name``)."""
    return f"verbalized/top{top_logprobs}" + ("/ten-continued" if ten_continued else "")


def scorer_name(cfg: ElicitConfig) -> str:
    """How a score is computed from the elicitor (part of the cache key): source and its settings.

    >>> from ual.config import ElicitConfig
    >>> scorer_name(ElicitConfig(backend="hf", model="m", prompt_version="v1", on_missing="fail"))
    'verbalized/top20'
    """
    if cfg.method == "entropy":
        return f"entropy/per-token/{cfg.target_tokenizer or 'self'}" if cfg.per_token else "entropy"
    if cfg.backend == "openai" and not cfg.logprobs:
        return "verbalized/text"
    return verbalized_scorer(cfg.top_logprobs, cfg.backend == "openai" and ten_continuation(cfg))


def scores_identity(cfg: ElicitConfig) -> dict[str, str]:
    """The fields every score record of this configuration carries (checked when a scores file is read)."""
    return {
        "prompt_version": cfg.prompt_version,
        "elicitor": elicitor_name(cfg),
        "source": cfg.method,
        "scorer": scorer_name(cfg),
    }


def cache_key(sample_id: str, prompt_version: str, elicitor: str, scorer: str) -> str:
    """sha256 of (sample content hash, prompt version, elicitor model, scorer)."""
    return hashlib.sha256(json.dumps([sample_id, prompt_version, elicitor, scorer]).encode()).hexdigest()


def cache_path(cfg: ElicitConfig) -> Path:
    """``<cache_dir>/<elicitor>_<prompt version>_<scorer>.jsonl`` (unsafe characters replaced by "_")."""
    stem = "_".join((elicitor_name(cfg), cfg.prompt_version, scorer_name(cfg)))
    return Path(cfg.cache_dir) / (re.sub(r"[^A-Za-z0-9.\-]+", "_", stem) + ".jsonl")


@dataclass
class Reply:
    """What a backend returns for one prompt."""

    raw: str  # the reply text ("" for the hf backend, which generates nothing)
    score: float | None
    read_from: str | None = None  # "logprobs" (API top_logprobs), "logits" (hf), "text" (parsed), "entropy"
    probs: dict[str, float] | None = None  # answer -> probability, as read (not renormalised)
    answer_mass: float | None = None  # their sum
    requests: int = 0  # HTTP requests made for this sample (paid calls)
    cost_usd: float = 0.0
    error: str | None = None  # set when the request itself failed after the retries
    token_scores: list[float] | None = None  # per_token: one raw entropy per response token of the target


class Elicitor(Protocol):
    """A backend: turns inputs (built from records by ``build_input``) into one ``Reply`` each."""

    name: str  # elicitor_name(cfg)
    source: str  # the uncertainty source, "verbalized" or "entropy" (ElicitConfig.method)
    scorer: str  # scorer_name(cfg)
    batch_size: int  # inputs per call of score()
    concurrency: int  # calls in flight

    def build_input(self, record: dict, prompt_version: str) -> Any: ...

    def score(self, inputs: list) -> list[Reply]: ...
