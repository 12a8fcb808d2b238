"""Uncertainty elicitation: an elicitor LLM rates every training sample 1..10 (docs/method.md, "Elicitation").

Inputs: the experiment YAML (``data`` for the samples, ``elicit`` for the backend and uncertainty source), or
any dataset file / hub id with the elicitor on the command line; the versioned prompt
``ual/prompts/elicit_uncertainty_<v>.txt``.
Outputs: ``scores.jsonl``, one score record per sample in data order (schema, reader and writer:
``ual.elicit.records``), or for ``--input`` the input rows plus ``uncertainty`` (and ``epsilon``); and
``<out>.meta.json`` on success (counts, paid requests, cost, provenance). Commands::

    python -m ual.elicit --experiment experiments/tiny.yaml --out results/tiny/elicit/scores.jsonl [--cache F]
    python -m ual.elicit --experiment experiments/tiny.yaml --source entropy --out .../scores.entropy.jsonl
    python -m ual.elicit --experiment experiments/paper_llama2-7b.yaml --estimate
    python -m ual.elicit --input data.jsonl --out scored.jsonl --backend openai --base-url URL --model M \
        [--eps-max 0.2]

From Python: ``elicit_dataset`` (below) scores a list of rows in memory.

Modules (no import cycle: core <- records <- cache <- run <- cli; backends import core only):
- ``core``: prompt, reply parsing, the expected score from answer-token probabilities, names, cache keys;
- ``records``: the score record schema, ``read_scores`` / ``write_scores`` (the scores file's one reader
  and writer, used by ``ual.smoothing`` and ``ual.report``);
- ``cache``: the append-only, kill-safe, lock-protected cache shared between runs;
- ``run``: ``elicit_scores`` (concurrency, claims, stats); ``cli``: the command line and ``score_records``,
  the one code path of both modes; ``dataset``: any dataset's rows as records (formats, column names);
- elicitors by (backend, source) in ``registry.ELICITORS``: ``hf`` (a local transformers model,
  ``ual.elicit.hf``) and ``openai`` (any OpenAI-compatible endpoint, ``ual.elicit.openai``) for the
  paper's verbalized score (source ``verbalized``, the default; both compute the same quantity,
  ``ual.elicit.core``), and ``hf`` with source ``entropy`` (``ual.elicit.entropy``: mean predictive
  entropy of the reference response, normalised over the training set);
- ``estimate``: the bill (requests, tokens, cost) before any call (``--estimate``).

The uncertainty source is ``elicit.method`` in the experiment YAML (``--source`` on the command line,
``source`` in a score record).

Cache key: sha256(sample id, prompt version, elicitor, scorer), the sample id being the content hash of
the sample. Missing samples fail the run with the count unless ``elicit.on_missing: median``
(``ual.smoothing`` then gives them the median uncertainty).
"""

from __future__ import annotations

from ual.elicit.cache import ScoreCache
from ual.elicit.core import (
    ANSWERS,
    Reply,
    build_elicit_prompt,
    cache_key,
    cache_path,
    elicitor_name,
    expected_score,
    parse_uncertainty,
    scorer_name,
    scores_identity,
)
from ual.elicit.records import RecordError, read_scores, write_scores
from ual.elicit.registry import ELICITORS, build_elicitor
from ual.elicit.run import RunStats, elicit_scores

__all__ = [
    "ANSWERS",
    "ELICITORS",
    "RecordError",
    "Reply",
    "RunStats",
    "ScoreCache",
    "build_elicit_prompt",
    "build_elicitor",
    "cache_key",
    "cache_path",
    "elicit_scores",
    "elicitor_name",
    "expected_score",
    "main",
    "parse_uncertainty",
    "read_scores",
    "scorer_name",
    "scores_identity",
    "write_scores",
]


def main(argv: list[str] | None = None) -> None:
    """``python -m ual.elicit`` (``ual.elicit.cli.main``)."""
    from ual.elicit.cli import main as cli_main

    cli_main(argv)
