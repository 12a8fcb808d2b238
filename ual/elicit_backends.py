"""Elicitor backends of ``ual.elicit``: a local transformers model (``hf``) and an OpenAI-compatible API.

Each backend turns prompts (built by ``ual.elicit.build_elicit_prompt``) into ``Reply`` objects; caching,
concurrency across calls, progress and the CLI live in ``ual.elicit`` (whose docstring documents how each
backend computes its score). Split out of ``ual.elicit`` to keep both modules under the size budget.

Changelog: v1 - initial.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import torch

from ual.config import ElicitConfig
from ual.elicit import ANSWERS, Reply, expected_score, parse_uncertainty

__all__ = ["HFElicitor", "OpenAIElicitor", "answer_token_ids"]

logger = logging.getLogger(__name__)
_SPACE_MARKERS = ("▁", "Ġ", " ")  # sentencepiece / byte-level BPE / plain space


def _strip_marker(token: str) -> str:
    for marker in _SPACE_MARKERS:
        if token.startswith(marker):
            return token[len(marker) :]
    return token


def answer_token_ids(tokenizer: Any) -> tuple[dict[str, list[int]], list[int], int | None]:
    """Token ids per answer "1".."10" (one-token spellings, with or without a leading space marker), the
    ids of the bare token "0", and the id of "1" to append for the two-token "10" (None if absent)."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    answers: dict[str, list[int]] = {k: [] for k in ANSWERS}
    zeros: list[int] = []
    for index, token in enumerate(tokens):
        if token is None:
            continue
        text = _strip_marker(token)
        if text in answers:
            answers[text].append(index)
        if token == "0":
            zeros.append(index)
    plain_one = tokenizer.encode("1", add_special_tokens=False)
    one_id = plain_one[-1] if plain_one and plain_one[-1] in answers["1"] else None
    return answers, zeros, one_id


class HFElicitor:
    """Probability-weighted expected score 1..10 from a local causal LM, batched with left padding."""

    concurrency = 1  # one forward pass at a time; torch already uses every core

    def __init__(self, model: Any, tokenizer: Any, batch_size: int, name: str):
        self.model, self.tokenizer, self.batch_size, self.name = model.eval(), tokenizer, batch_size, name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.answers, self.zeros, self.one_id = answer_token_ids(tokenizer)
        if not any(self.answers.values()):
            raise ValueError(f"{name}: the tokenizer has no token for any answer 1..10")
        self.device = next(model.parameters()).device

    def render(self, prompt: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt + " "

    @torch.inference_mode()
    def score(self, prompts: list[str]) -> list[Reply]:
        batch = self.tokenizer(  # left padding for this call only: the tokenizer may be shared
            [self.render(p) for p in prompts],
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=False,
        )
        input_ids, mask = batch["input_ids"], batch["attention_mask"]
        if self.one_id is not None:  # the "1" of a two-token "10": P("0" | "1") from the same pass
            input_ids = torch.cat([input_ids, torch.full_like(input_ids[:, :1], self.one_id)], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        # explicit positions so a left-padded row scores as it would alone
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            logits_to_keep=2,
        ).logits.float()
        first = logits[:, 0 if self.one_id is not None else 1].softmax(-1)  # (B, V) at the answer position
        after_one = logits[:, 1].softmax(-1) if self.one_id is not None else None
        replies = []
        for row in range(len(prompts)):
            mass = {k: float(first[row, ids].sum()) if ids else 0.0 for k, ids in self.answers.items()}
            if after_one is not None and self.zeros:
                p_zero = float(after_one[row, self.zeros].sum())
                mass["10"] += mass["1"] * p_zero
                mass["1"] *= 1.0 - p_zero
            raw = json.dumps(
                {
                    "probs": {k: float(f"{v:.4g}") for k, v in mass.items()},
                    "answer_mass": float(f"{sum(mass.values()):.4g}"),
                }
            )
            replies.append(Reply(raw=raw, score=expected_score(mass)))
        return replies


def _retryable(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, openai.APIConnectionError | openai.RateLimitError):  # incl. APITimeoutError
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


class OpenAIElicitor:
    """One chat completion per prompt against any OpenAI-compatible endpoint, retried with backoff."""

    batch_size = 1

    def __init__(self, cfg: ElicitConfig, name: str):
        import openai

        if not cfg.api_key_env:
            raise ValueError("elicit.api_key_env must name the environment variable that holds the API key")
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise ValueError(f"environment variable {cfg.api_key_env} (elicit.api_key_env) is not set")
        self._key = key
        # max_retries=0: tenacity owns the retry policy, so it is the same for every error kind
        self.client = openai.OpenAI(base_url=cfg.base_url, api_key=key, timeout=cfg.timeout_s, max_retries=0)
        self.cfg, self.name, self.concurrency = cfg, name, cfg.concurrency

    def _request(self, prompt: str) -> Any:
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

        kwargs: dict[str, Any] = {
            "model": self.cfg.model,
            "temperature": 0,
            "max_tokens": self.cfg.max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
        if self.cfg.logprobs:
            kwargs.update(logprobs=True, top_logprobs=20)
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.cfg.max_retries + 1),
            wait=wait_exponential_jitter(
                initial=self.cfg.retry_wait_s, max=60.0, jitter=self.cfg.retry_wait_s
            ),
            reraise=True,
            before_sleep=lambda state: logger.debug(
                "retry %d after %s", state.attempt_number, type(state.outcome.exception()).__name__
            ),
        )
        return retrying(self.client.chat.completions.create, **kwargs)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***")  # error bodies may echo the key; never write it anywhere

    def score(self, prompts: list[str]) -> list[Reply]:
        replies = []
        for prompt in prompts:
            try:
                completion = self._request(prompt)
                choice = completion.choices[0]
                content = choice.message.content or ""
            except Exception as exc:  # noqa: BLE001 - recorded as missing with its reason
                replies.append(
                    Reply(raw="", score=None, error=self._scrub(f"{type(exc).__name__}: {exc}")[:300])
                )
                continue
            score: float | None = parse_uncertainty(content)
            tokens = getattr(getattr(choice, "logprobs", None), "content", None)
            if tokens and tokens[0].token.strip() in ANSWERS and tokens[0].top_logprobs:
                probs: dict[str, float] = {}
                for alternative in tokens[0].top_logprobs:
                    answer = alternative.token.strip()
                    probs[answer] = probs.get(answer, 0.0) + math.exp(alternative.logprob)
                if not (score == 10 and "10" not in probs):  # digit-splitting endpoint: keep the integer
                    score = expected_score(probs)
            usage = completion.usage
            cost = (
                0.0
                if usage is None
                else (
                    usage.prompt_tokens * self.cfg.usd_per_1m_input_tokens
                    + usage.completion_tokens * self.cfg.usd_per_1m_output_tokens
                )
                / 1e6
            )
            replies.append(Reply(raw=self._scrub(content), score=score, cost_usd=cost))
        return replies
