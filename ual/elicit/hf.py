"""The ``hf`` elicitor backend: a local transformers model reads the answer distribution from its logits.

The prompt is rendered with the tokenizer's chat template (plain text if it has none), exactly as an
OpenAI-compatible server renders the same one-message chat (llama.cpp: checked token for token on
SmolLM2), and batched with left padding. At the answer position (the first reply token) the answers are
the tokens that spell "1".."10" (``ual.elicit.core.answer_of``) among the ``top_logprobs`` most probable
tokens; where "10" is split into "1" + "0" (SmolLM2, Llama) the "1" token is appended in the same forward
pass and P("0" | "1") is read there, among its own top ``top_logprobs``. Score: ``expected_score`` of
``split_ten``; no text is generated, so nothing is parsed. Source "logits"; requests 0.
"""

from __future__ import annotations

from typing import Any

import torch

from ual.config import ElicitConfig
from ual.elicit.core import (
    ANSWERS,
    Reply,
    answer_of,
    build_elicit_prompt,
    elicitor_name,
    expected_score,
    split_ten,
    verbalized_scorer,
)

__all__ = ["HFElicitor", "answer_token_ids", "build"]


def answer_token_ids(tokenizer: Any) -> tuple[dict[str, list[int]], list[int], int | None]:
    """Token ids per answer "1".."10" (one-token spellings, with or without a leading space marker), the
    ids of the bare token "0", and the id of "1" to append for the two-token "10" (None if absent)."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    answers: dict[str, list[int]] = {k: [] for k in ANSWERS}
    zeros: list[int] = []
    for index, token in enumerate(tokens):
        if token is None:
            continue
        answer = answer_of(token)
        if answer is not None:
            answers[answer].append(index)
        if token == "0":
            zeros.append(index)
    plain_one = tokenizer.encode("1", add_special_tokens=False)
    one_id = plain_one[-1] if plain_one and plain_one[-1] in answers["1"] else None
    return answers, zeros, one_id


def render_chat(tokenizer: Any, prompt: str) -> str:
    """The one-user-message chat as the model sees it, ending where the reply starts."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt + " "


def _top_k_mask(probs: torch.Tensor, k: int) -> torch.Tensor:
    """``probs`` (B, V) with everything outside each row's top k set to 0."""
    kept = torch.zeros_like(probs)
    top = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return kept.scatter_(-1, top.indices, top.values)


class HFElicitor:
    """Probability-weighted expected score 1..10 from a local causal LM, batched with left padding."""

    concurrency = 1  # one forward pass at a time; torch already uses every core
    source = "verbalized"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int, name: str, top_logprobs: int = 20):
        self.model, self.tokenizer, self.batch_size, self.name = model.eval(), tokenizer, batch_size, name
        self.top_logprobs, self.scorer = top_logprobs, verbalized_scorer(top_logprobs)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.answers, self.zeros, self.one_id = answer_token_ids(tokenizer)
        if not any(self.answers.values()):
            raise ValueError(f"{name}: the tokenizer has no token for any answer 1..10")
        self.device = next(model.parameters()).device

    def build_input(self, record: dict, prompt_version: str) -> str:
        return build_elicit_prompt(record, prompt_version)

    def render(self, prompt: str) -> str:
        return render_chat(self.tokenizer, prompt)

    @torch.inference_mode()
    def score(self, inputs: list[str]) -> list[Reply]:
        batch = self.tokenizer(  # left padding for this call only: the tokenizer may be shared
            [self.render(p) for p in inputs],
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
        # (B, V) at the answer position, and after the appended "1"; outside the top k: 0
        first = _top_k_mask(logits[:, 0 if self.one_id is not None else 1].softmax(-1), self.top_logprobs)
        after_one = None
        if self.one_id is not None:
            after_one = _top_k_mask(logits[:, 1].softmax(-1), self.top_logprobs)
        replies = []
        for row in range(len(inputs)):
            mass = {k: float(first[row, ids].sum()) if ids else 0.0 for k, ids in self.answers.items()}
            if after_one is not None and self.zeros:
                mass = split_ten(mass, min(1.0, float(after_one[row, self.zeros].sum())))
            probs = {k: float(f"{v:.6g}") for k, v in mass.items() if v > 0}
            replies.append(
                Reply(
                    raw="",
                    score=expected_score(mass),
                    read_from="logits",
                    probs=probs,
                    answer_mass=float(f"{sum(mass.values()):.6g}"),
                )
            )
        return replies


def build(cfg: ElicitConfig) -> HFElicitor:
    """The ``hf`` elicitor of an experiment (on the GPU when there is one)."""
    from ual.models import load_model

    model, tokenizer = load_model(cfg.model, revision=cfg.revision)
    if torch.cuda.is_available():
        model = model.cuda()
    return HFElicitor(model, tokenizer, cfg.batch_size, elicitor_name(cfg), cfg.top_logprobs)
