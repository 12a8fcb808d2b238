"""``elicit.method: entropy``: a second uncertainty source beside the verbalized score (hf backend only).

For each training sample, the elicitor model reads the reference response teacher-forced after the
sample's instruction (and input), rendered as a one-turn chat with the tokenizer's chat template (plain
text if it has none); nothing is generated or parsed. The raw score is the mean, over the response tokens,
of the predictive entropy H_t = -sum_v p_t(v) log p_t(v) (nats) of the model's next-token distribution at
each response position. Uncertainty is that mean min-max normalised over the scored samples of the
training set (``normalise_entropy``): u = (H - H_min) / (H_max - H_min), 0 when all are equal; the cache
keeps the raw entropies (uncertainty null) so a different training set renormalises without recomputing.
A sample whose response has no token is missing. Responses are cut at ``MAX_TOKENS`` tokens in all.

Per token (``per_token``, ``python -m ual.elicit --input ... --source entropy --per-token``; an extension
beyond the paper): the record also keeps H_t of every response token (``token_entropy``), aligned to the
tokens of the response text under ``target_tokenizer`` (the trained model's; ``add_special_tokens=False``):
a target token takes the mean H_t of the elicitor tokens whose characters it overlaps (the nearest one where
none does), so with the elicitor's own tokenizer the values are H_t itself. ``normalise_entropy`` then adds
``token_uncertainty``, min-max normalised over every token of the set. A response cut at ``MAX_TOKENS`` has
no per-token value for its tail: the sample fails with that reason (the run names it), nothing is filled in.
"""

from __future__ import annotations

from typing import Any

import torch

from ual.config import ElicitConfig
from ual.elicit.core import Reply, elicitor_name, scorer_name
from ual.elicit.hf import render_chat

__all__ = ["MAX_TOKENS", "EntropyElicitor", "align_to_tokens", "build", "normalise_entropy"]

MAX_TOKENS = 2048  # prompt + response tokens per sample (longer responses are cut at the end)


class EntropyElicitor:
    """Mean per-token predictive entropy of the reference response, batched with right padding."""

    concurrency = 1
    source = "entropy"

    def __init__(
        self, model: Any, tokenizer: Any, batch_size: int, name: str, scorer: str = "entropy",
        target: Any = None,
    ):
        """``target``: per token, the target tokenizer (``tokenizer`` itself: the elicitor's own tokens)."""
        self.model, self.tokenizer, self.batch_size, self.name = model.eval(), tokenizer, batch_size, name
        self.scorer, self.target = scorer, target
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        for which in (tokenizer, target) if target is not None else ():
            if not which.is_fast:
                raise ValueError(
                    f"per-token entropy aligns by character offsets: {type(which).__name__} is not a fast "
                    "tokenizer"
                )
        self.device = next(model.parameters()).device

    def build_input(self, record: dict, prompt_version: str) -> tuple[str, str]:
        """(the rendered instruction turn, the reference response); ``prompt_version`` is not used."""
        user = record["instruction"] + (f"\n\n{record['input']}" if record["input"] else "")
        return render_chat(self.tokenizer, user), record["output"]

    def _ids(self, prefix: str, response: str) -> tuple[list[int], int, list[tuple[int, int]] | None]:
        """(prompt + response ids cut at MAX_TOKENS, the response's start; per token, its tokens' spans)."""
        # tokenised apart so the boundary is exact: the response's tokens are the model's targets
        head = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        per_token = self.target is not None
        tail = self.tokenizer(response, add_special_tokens=False, return_offsets_mapping=per_token)
        spans = tail["offset_mapping"] if per_token else None
        return (head + tail["input_ids"])[:MAX_TOKENS], len(head), spans

    @torch.inference_mode()
    def score(self, inputs: list[tuple[str, str]]) -> list[Reply]:
        rows = [self._ids(prefix, response) for prefix, response in inputs]
        width = max(len(ids) for ids, _, _ in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _, _ in rows])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _, _ in rows])
        logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).logits
        replies = []
        for row, (ids, start, spans) in enumerate(rows):
            # position t predicts token t + 1: the response tokens start .. len-1 are predicted at start-1 ..
            positions = logits[row, start - 1 : len(ids) - 1].float()  # (n_response, V)
            if positions.shape[0] == 0 or start == 0:
                replies.append(Reply(raw="", score=None, read_from="entropy"))
                continue
            entropy = torch.distributions.Categorical(logits=positions).entropy()  # (n_response,)
            reply = Reply(raw="", score=float(entropy.mean()), read_from="entropy")
            replies.append(reply if spans is None else self._per_token(reply, inputs[row][1], entropy, spans))
        return replies

    def _per_token(
        self, reply: Reply, response: str, entropy: torch.Tensor, spans: list[tuple[int, int]]
    ) -> Reply:
        """``reply`` with the entropies of the response's tokens (``spans``) aligned to the target's tokens
        (an error if the response was cut)."""
        if len(spans) > entropy.numel():
            return Reply(raw="", score=None, read_from="entropy", error=(
                f"per-token entropy: the response's {len(spans)} tokens pass the {MAX_TOKENS}-token cut"
            ))
        values = entropy.tolist()
        if self.target is not self.tokenizer:
            targets = self.target(response, add_special_tokens=False, return_offsets_mapping=True)
            values = align_to_tokens(spans, values, targets["offset_mapping"])
        reply.token_scores = values
        return reply


def align_to_tokens(
    spans: list[tuple[int, int]], values: list[float], targets: list[tuple[int, int]]
) -> list[float]:
    """One value per target span: the mean of the values whose spans overlap it, else the nearest one's.

    >>> align_to_tokens([(0, 3), (3, 6)], [1.0, 3.0], [(0, 2), (2, 6), (6, 6)])
    [1.0, 2.0, 3.0]
    """
    out = []
    for start, end in targets:
        reach = max(end, start + 1)  # an empty span reaches its first character
        hits = [v for (a, b), v in zip(spans, values, strict=True) if a < reach and start < b]
        if not hits:  # an empty or uncovered target span: the nearest elicitor token
            nearest = min(range(len(spans)), key=lambda i: max(spans[i][0] - start, start - spans[i][1], 0))
            hits = [values[nearest]]
        out.append(sum(hits) / len(hits))
    return out


def _min_max(values: list[float]) -> tuple[float | None, float | None]:
    return (min(values), max(values)) if values else (None, None)


def _scale(value: float, low: float, high: float) -> float:
    return (value - low) / (high - low) if high > low else 0.0


def normalise_entropy(rows: list[dict]) -> tuple[list[dict], dict[str, float | None]]:
    """Rows with uncertainty = min-max normalised entropy over the scored rows, and (min, max) used; rows
    with ``token_entropy`` also get ``token_uncertainty``, normalised over every token of ``rows``.

    >>> rows, span = normalise_entropy([{"score": 1.0}, {"score": 3.0}, {"score": None}, {"score": 2.0}])
    >>> [r.get("uncertainty") for r in rows], span
    ([0.0, 1.0, None, 0.5], {'entropy_min': 1.0, 'entropy_max': 3.0})
    """
    low, high = _min_max([r["score"] for r in rows if r["score"] is not None])
    tokens = [value for r in rows for value in r.get("token_entropy") or ()]
    token_low, token_high = _min_max(tokens)
    out = []
    for row in rows:
        extra = {"uncertainty": None if row["score"] is None else _scale(row["score"], low, high)}
        if row.get("token_entropy") is not None:
            extra["token_uncertainty"] = [_scale(v, token_low, token_high) for v in row["token_entropy"]]
        out.append(row | extra)
    span = {"entropy_min": low, "entropy_max": high}
    return out, span | ({"token_entropy_min": token_low, "token_entropy_max": token_high} if tokens else {})


def build(cfg: ElicitConfig) -> EntropyElicitor:
    """The entropy elicitor of ``cfg`` (on the GPU when there is one; per token with its target tokenizer)."""
    from ual.models import load_model, load_tokenizer

    model, tokenizer = load_model(cfg.model, revision=cfg.revision)
    if torch.cuda.is_available():
        model = model.cuda()
    target = None
    if cfg.per_token:
        target = load_tokenizer(cfg.target_tokenizer) if cfg.target_tokenizer else tokenizer
    return EntropyElicitor(model, tokenizer, cfg.batch_size, elicitor_name(cfg), scorer_name(cfg), target)
