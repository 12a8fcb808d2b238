"""``elicit.method: entropy``: a second uncertainty source beside the verbalized score (hf backend only).

For each training sample, the elicitor model reads the reference response teacher-forced after the
sample's instruction (and input), rendered as a one-turn chat with the tokenizer's chat template (plain
text if it has none); nothing is generated or parsed. The raw score is the mean, over the response tokens,
of the predictive entropy H_t = -sum_v p_t(v) log p_t(v) (nats) of the model's next-token distribution at
each response position. Uncertainty is that mean min-max normalised over the scored samples of the
training set (``normalise_entropy``): u = (H - H_min) / (H_max - H_min), 0 when all are equal; the cache
keeps the raw entropies (uncertainty null) so a different training set renormalises without recomputing.
A sample whose response has no token is missing. Responses are cut at ``MAX_TOKENS`` tokens in all.
"""

from __future__ import annotations

from typing import Any

import torch

from ual.config import ElicitConfig
from ual.elicit.core import Reply, elicitor_name
from ual.elicit.hf import render_chat

__all__ = ["MAX_TOKENS", "EntropyElicitor", "build", "normalise_entropy"]

MAX_TOKENS = 2048  # prompt + response tokens per sample (longer responses are cut at the end)


class EntropyElicitor:
    """Mean per-token predictive entropy of the reference response, batched with right padding."""

    concurrency = 1
    source = scorer = "entropy"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int, name: str):
        self.model, self.tokenizer, self.batch_size, self.name = model.eval(), tokenizer, batch_size, name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.device = next(model.parameters()).device

    def build_input(self, record: dict, prompt_version: str) -> tuple[str, str]:
        """(the rendered instruction turn, the reference response); ``prompt_version`` is not used."""
        user = record["instruction"] + (f"\n\n{record['input']}" if record["input"] else "")
        return render_chat(self.tokenizer, user), record["output"]

    def _ids(self, prefix: str, response: str) -> tuple[list[int], int]:
        # tokenised apart so the boundary is exact: the response's tokens are the model's targets
        head = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        tail = self.tokenizer(response, add_special_tokens=False)["input_ids"]
        return (head + tail)[:MAX_TOKENS], len(head)

    @torch.inference_mode()
    def score(self, inputs: list[tuple[str, str]]) -> list[Reply]:
        rows = [self._ids(prefix, response) for prefix, response in inputs]
        width = max(len(ids) for ids, _ in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
        logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).logits
        replies = []
        for row, (ids, start) in enumerate(rows):
            # position t predicts token t + 1: the response tokens start .. len-1 are predicted at start-1 ..
            positions = logits[row, start - 1 : len(ids) - 1].float()  # (n_response, V)
            if positions.shape[0] == 0 or start == 0:
                replies.append(Reply(raw="", score=None, read_from="entropy"))
                continue
            entropy = torch.distributions.Categorical(logits=positions).entropy()  # (n_response,)
            replies.append(Reply(raw="", score=float(entropy.mean()), read_from="entropy"))
        return replies


def normalise_entropy(rows: list[dict]) -> tuple[list[dict], dict[str, float | None]]:
    """Rows with uncertainty = min-max normalised entropy over the scored rows, and (min, max) used.

    >>> rows, span = normalise_entropy([{"score": 1.0}, {"score": 3.0}, {"score": None}, {"score": 2.0}])
    >>> [r.get("uncertainty") for r in rows], span
    ([0.0, 1.0, None, 0.5], {'entropy_min': 1.0, 'entropy_max': 3.0})
    """
    scored = [r["score"] for r in rows if r["score"] is not None]
    low, high = (min(scored), max(scored)) if scored else (None, None)
    out = []
    for row in rows:
        if row["score"] is None:
            out.append(row | {"uncertainty": None})
        else:
            out.append(row | {"uncertainty": (row["score"] - low) / (high - low) if high > low else 0.0})
    return out, {"entropy_min": low, "entropy_max": high}


def build(cfg: ElicitConfig) -> EntropyElicitor:
    """The entropy elicitor of an experiment (on the GPU when there is one)."""
    from ual.models import load_model

    model, tokenizer = load_model(cfg.model, revision=cfg.revision)
    if torch.cuda.is_available():
        model = model.cuda()
    return EntropyElicitor(model, tokenizer, cfg.batch_size, elicitor_name(cfg))
