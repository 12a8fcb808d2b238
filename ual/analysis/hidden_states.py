"""The analysis stage's teacher-forced pass: hidden states for the clustering and LM-head token statistics
for the calibration, from one forward per sequence, memory bounded.

Inputs: a causal LM and its tokenizer (``ual.models.load_model``) and held-out records in the ual.data schema
({id, dataset, instruction, input, output, answer}) (``ual.analysis.references``).
Outputs: ``CollectedStates``: per analysed layer an ``(n, H)`` float32 ``.npy`` memmap in a work folder, and
per row the target token id, the record index and the target's position; and, for the examples to score,
per response token the NLL, entropy, top-1 confidence, correctness and Brier score
(``ual.analysis.calibration.head_token_statistics``).

Procedure (``COLLECTION_VERSION``):
1. A record is tokenised exactly as training tokenises it, ``ual.collate.tokenize_example`` under
   ``model.prompt_template`` (alpaca: ``render_alpaca(instruction, input)`` + " " + output + EOS, cut at
   ``max_length`` from the right); the targets are its trained labels except the final EOS, whose state
   encodes "stop here", not a token.
2. Pass 1, tokenizer only: count the response tokens; keep the K most frequent (ties: smaller id). The
   candidate rows are the positions whose target is one of them; ``max_states`` of them are drawn without
   replacement by ``numpy.random.default_rng(seed)``. The draw depends on records, tokenizer and seed only,
   so models that share a tokenizer (SFT / LS / UAL of one base) are compared on the very same positions.
3. Pass 2, model (``teacher_forced_pass``): batched forward with ``output_hidden_states=True`` through the
   base model (no B x T x V logits), over the records holding a drawn row and the examples to score, each
   once. The state for the target at position t is ``hidden_states[layer][:, t - 1]``; drawn rows go to the
   memmaps batch by batch, so memory holds one batch of activations plus index arrays of length
   ``max_states``, never the states of all tokens. For a scored example, ``hidden_states[-1][:, t - 1]`` of
   every response position goes through the LM head in blocks of ``chunk_size`` positions.

``hidden_states`` indices follow transformers: 0 = embeddings, i = output of decoder layer i; the last entry
is the final-norm output, i.e. the input of ``lm_head`` (checked for Llama in tests/integration).

Used by ``python -m ual.analysis`` (the CLI lives in ``ual.analysis.stage``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

__all__ = [
    "COLLECTION_VERSION",
    "TargetExample",
    "StatePlan",
    "CollectedStates",
    "tokenize_examples",
    "count_target_tokens",
    "select_top_tokens",
    "plan_states",
    "resolve_layers",
    "collect_hidden_states",
    "collected_states",
    "output_head",
    "pad_token_id",
    "plan_collection",
    "PassResult",
    "StateRequest",
    "teacher_forced_pass",
]

COLLECTION_VERSION = 1
# Batches are right-padded to a multiple of this: few distinct shapes, so the framework's per-shape kernel
# caches stay small and memory stays flat as the sample grows (benchmarks/clustering.py).
PAD_TO_MULTIPLE_OF = 64


@dataclass(frozen=True)
class TargetExample:
    """One teacher-forced sequence; the targets are ``input_ids[prompt_length:]``."""

    input_ids: list[int]
    prompt_length: int

    @property
    def first_target(self) -> int:
        return max(self.prompt_length, 1)  # position 0 has no state before it


@dataclass(frozen=True)
class StatePlan:
    """The drawn rows, ordered by (record, position)."""

    sample_index: np.ndarray  # (n,) int64: index into the examples
    position: np.ndarray  # (n,) int64: position of the target token; its state sits at position - 1
    label: np.ndarray  # (n,) int64: target token id
    n_candidates: int  # response positions whose target is a top-K token
    n_targets: int  # all response positions


@dataclass
class CollectedStates:
    layers: dict[str, int]  # name ("last", "layer_15") -> hidden_states index
    states: dict[str, np.ndarray]  # name -> (n, H) float32 memmap
    labels: np.ndarray  # (n,) target token ids
    sample_index: np.ndarray
    position: np.ndarray
    top_tokens: list[int]
    token_counts: dict[int, int]  # top-K token -> count over all response targets
    n_targets: int
    n_candidates: int
    hidden_size: int


def tokenize_examples(
    records: Sequence[Mapping[str, Any]], tokenizer: Any, max_length: int, template: str = "alpaca"
) -> list[TargetExample]:
    """Prompt + reference response as token ids, tokenised as in training (module docstring, step 1)."""
    from ual.collate import tokenize_example
    from ual.losses import IGNORE_INDEX

    examples = []
    for row, record in enumerate(records):
        for key in ("instruction", "output"):
            if not isinstance(record.get(key), str):
                raise KeyError(f"held-out record {row} (id {record.get('id')!r}) has no string '{key}'")
        tokenized = tokenize_example(dict(record), tokenizer, template, max_length)
        input_ids, labels = list(tokenized["input_ids"]), tokenized["labels"]
        prompt_length = next((t for t, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
        ends_with_eos = not tokenized["truncated"] and input_ids[-1] == tokenizer.eos_token_id
        if ends_with_eos and prompt_length < len(labels):
            input_ids = input_ids[:-1]  # the appended EOS is trained but not a clustering target
        examples.append(TargetExample(input_ids, prompt_length))
    return examples


def count_target_tokens(examples: Sequence[TargetExample]) -> Counter[int]:
    counts: Counter[int] = Counter()
    for example in examples:
        counts.update(example.input_ids[example.first_target :])
    return counts


def select_top_tokens(counts: Mapping[int, int], k: int) -> list[int]:
    """The ``k`` most frequent tokens, ties broken by the smaller id.

    >>> select_top_tokens({5: 3, 7: 3, 9: 1}, 2)
    [5, 7]
    """
    distinct = sum(1 for count in counts.values() if count > 0)
    if distinct < 2:
        raise ValueError(
            f"the held-out responses contain {distinct} distinct target token(s); clustering needs at least 2"
        )
    if k > distinct:
        raise ValueError(
            f"analysis.top_k_tokens={k} but the held-out responses contain only {distinct} distinct target "
            "tokens; lower top_k_tokens or raise eval_samples"
        )
    ranked = sorted((item for item in counts.items() if item[1] > 0), key=lambda item: (-item[1], item[0]))
    return [token for token, _ in ranked[:k]]


def plan_states(
    examples: Sequence[TargetExample], top_tokens: Sequence[int], max_states: int, seed: int
) -> StatePlan:
    """Draw ``max_states`` of the positions whose target is a top token (all of them if fewer)."""
    top = np.asarray(sorted(top_tokens), dtype=np.int64)
    per_example = []  # candidate positions of each example: small int arrays, no states
    for example in examples:
        targets = np.asarray(example.input_ids[example.first_target :], dtype=np.int64)
        per_example.append(example.first_target + np.flatnonzero(np.isin(targets, top)))
    n_candidates = int(sum(len(positions) for positions in per_example))
    n_targets = sum(max(len(example.input_ids) - example.first_target, 0) for example in examples)
    n_rows = min(max_states, n_candidates)
    if n_rows < n_candidates:
        chosen = np.sort(np.random.default_rng(seed).choice(n_candidates, size=n_rows, replace=False))
    else:
        chosen = np.arange(n_candidates)
    sample_index, position, label = [], [], []
    offset = 0
    for index, (example, positions) in enumerate(zip(examples, per_example, strict=True)):
        lo, hi = np.searchsorted(chosen, [offset, offset + len(positions)])
        picked = positions[chosen[lo:hi] - offset]
        sample_index.append(np.full(len(picked), index, dtype=np.int64))
        position.append(picked)
        label.append(np.asarray(example.input_ids, dtype=np.int64)[picked])
        offset += len(positions)
    empty = np.zeros(0, dtype=np.int64)
    return StatePlan(
        sample_index=np.concatenate(sample_index) if sample_index else empty,
        position=np.concatenate(position) if position else empty,
        label=np.concatenate(label) if label else empty,
        n_candidates=n_candidates,
        n_targets=n_targets,
    )


def resolve_layers(num_hidden_layers: int, middle_layer: int | None) -> dict[str, int]:
    """Names -> ``hidden_states`` indices: always ``last``; ``layer_<i>`` for a middle layer."""
    layers = {"last": num_hidden_layers}
    if middle_layer is not None:
        if not 0 <= middle_layer < num_hidden_layers:
            raise ValueError(
                f"analysis.middle_layer={middle_layer} is outside 0..{num_hidden_layers - 1} for a model "
                f"with {num_hidden_layers} decoder layers (the last layer is always analysed)"
            )
        layers[f"layer_{middle_layer}"] = middle_layer
    return layers


def _padded_width(length: int) -> int:
    return -(-length // PAD_TO_MULTIPLE_OF) * PAD_TO_MULTIPLE_OF


def _hidden_states(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    # The base model returns the same hidden_states without projecting every position onto the vocabulary.
    base = getattr(model, "base_model", model)
    with torch.inference_mode():
        output = base(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False
        )
    hidden = getattr(output, "hidden_states", None)
    if hidden is None and isinstance(output, Mapping):
        hidden = output.get("hidden_states")
    if not hidden:
        raise ValueError(
            f"{type(model).__name__} returned no hidden_states for output_hidden_states=True; the clustering "
            "analysis needs a transformers causal LM that exposes them"
        )
    return hidden


@dataclass
class PassResult:
    """What one teacher-forced pass over a model returns (``teacher_forced_pass``)."""

    layers: dict[str, int]  # analysed layers; empty when no state row was asked for
    states: dict[str, np.ndarray]  # name -> (rows, H) float32 memmap of the plan's rows
    hidden_size: int
    tokens: list[dict[str, np.ndarray]]  # per scored example (order of ``score``): calibration token statistics


# Configuration attributes of transformers models whose logits are not ``lm_head(last hidden state)``
# (soft-capping, scaling): the chunked head statistics would not see the model's logits.
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def output_head(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight (V, H), bias or None) of the LM head; a model whose logits are transformed is refused."""
    config = getattr(model, "config", None)
    for name in LOGIT_TRANSFORMS:
        value = getattr(config, name, None)
        if value not in (None, 1, 1.0):
            raise ValueError(
                f"{type(model).__name__} transforms its logits ({name}={value}); the teacher-forced calibration "
                "computes lm_head(last hidden state) and would not score the model's own distribution"
            )
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or not isinstance(getattr(head, "weight", None), torch.Tensor):
        raise ValueError(f"{type(model).__name__} has no linear output embedding (lm_head) to score tokens with")
    return head.weight, getattr(head, "bias", None)


def _pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, max_length: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and attention mask of a batch (real positions keep their indices), as wide as
    the longest sequence rounded up by ``_padded_width`` and at most ``max_length``."""
    width = min(_padded_width(max(len(ids) for ids in sequences)), max_length)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for b, ids in enumerate(sequences):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        attention_mask[b, : len(ids)] = 1
    return input_ids, attention_mask


def _head_statistics(
    last: torch.Tensor,
    input_ids: torch.Tensor,
    scored: Sequence[tuple[int, TargetExample]],
    head: tuple[torch.Tensor, torch.Tensor | None],
    chunk_size: int,
) -> list[dict[str, np.ndarray]]:
    """Per scored (batch row, example): the LM-head token statistics of every response position t >= 1,
    from the final hidden states ``last`` (B, T, H) at t - 1 (``calibration.head_token_statistics``)."""
    from ual.analysis.calibration import head_token_statistics

    device = last.device
    positions = [torch.arange(example.first_target, len(example.input_ids)) for _, example in scored]
    batch_pos = torch.cat([torch.full((len(t),), b) for (b, _), t in zip(scored, positions, strict=True)])
    target_pos = torch.cat(positions)
    targets = input_ids[batch_pos, target_pos]
    states = last[batch_pos.to(device), (target_pos - 1).to(device)]
    stats = head_token_statistics(states, head[0], targets.to(device), head[1], chunk_size)
    bounds = np.cumsum([0] + [len(t) for t in positions])
    return [{name: value[bounds[k] : bounds[k + 1]] for name, value in stats.items()} for k in range(len(scored))]


def teacher_forced_pass(
    model: torch.nn.Module,
    examples: Sequence[TargetExample],
    *,
    plan: StatePlan | None,
    middle_layer: int | None,
    workdir: str | Path | None,
    score: Sequence[int] = (),
    batch_size: int = 8,
    max_length: int,
    pad_id: int,
    chunk_size: int = 256,
) -> PassResult:
    """One forward per example that needs it: the plan's hidden states, and head statistics of ``score``.

    Every example holding a row of ``plan`` (clustering) or listed in ``score`` (calibration) is forwarded
    exactly once, batched by length. For a drawn row the states of the analysed layers go to
    ``<workdir>/states_<layer>.npy``; for a scored example every response position t >= 1 is scored through
    the LM head on ``hidden_states[-1][t - 1]`` (the final-norm output; ``calibration.head_token_statistics``,
    ``chunk_size`` positions at a time, never B x T x V logits).
    """
    if plan is not None and len(plan.label):
        row_bounds = np.searchsorted(plan.sample_index, np.arange(len(examples) + 1))
    else:
        row_bounds = np.zeros(len(examples) + 1, dtype=np.int64)
    slot = {index: number for number, index in enumerate(score)}
    if len(slot) != len(score) or any(not 0 <= i < len(examples) for i in score):
        raise ValueError("score must list distinct example indices")
    weight, bias = output_head(model) if score else (None, None)
    needed = [i for i in range(len(examples)) if row_bounds[i + 1] > row_bounds[i] or i in slot]
    needed.sort(key=lambda i: -len(examples[i].input_ids))  # similar lengths per batch: less padding
    device = next((parameter.device for parameter in model.parameters()), torch.device("cpu"))
    layers: dict[str, int] = {}
    states: dict[str, np.ndarray] = {}
    hidden_size = 0
    tokens: list[dict[str, np.ndarray]] = [{} for _ in score]
    batches = [needed[start : start + batch_size] for start in range(0, len(needed), batch_size)]
    for batch in tqdm(batches, desc="teacher forcing", unit="batch", mininterval=5.0):
        input_ids, attention_mask = _pad_batch([examples[i].input_ids for i in batch], pad_id, max_length)
        hidden = _hidden_states(model, input_ids.to(device), attention_mask.to(device))
        hidden_size = hidden[-1].shape[-1]
        rows_per_example = np.diff(row_bounds)[batch]
        if rows_per_example.sum():
            if not layers:
                layers = resolve_layers(len(hidden) - 1, middle_layer)
                for name in layers:
                    states[name] = np.lib.format.open_memmap(
                        Path(workdir) / f"states_{name}.npy", mode="w+", dtype=np.float32,
                        shape=(len(plan.label), hidden_size),
                    )
            rows = np.concatenate([np.arange(row_bounds[i], row_bounds[i + 1]) for i in batch])
            batch_pos = torch.as_tensor(np.repeat(np.arange(len(batch)), rows_per_example), device=device)
            state_pos = torch.as_tensor(plan.position[rows] - 1, device=device)  # t - 1 predicts t
            for name, index in layers.items():
                states[name][rows] = hidden[index][batch_pos, state_pos].float().cpu().numpy()
        scored = [(b, i) for b, i in enumerate(batch) if i in slot]
        if scored:
            per_example = _head_statistics(hidden[-1], input_ids, [(b, examples[i]) for b, i in scored],
                                           (weight, bias), chunk_size)
            for (_, i), stats in zip(scored, per_example, strict=True):
                tokens[slot[i]] = stats
    for array in states.values():
        array.flush()
    return PassResult(layers=layers, states=states, hidden_size=hidden_size, tokens=tokens)


@dataclass(frozen=True)
class StateRequest:
    """The clustering's part of a pass: held-out examples, their top-K tokens and the drawn rows."""

    examples: list[TargetExample]
    counts: Counter[int]
    top_tokens: list[int]
    plan: StatePlan


def plan_collection(
    records: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    *,
    top_k: int,
    max_states: int,
    seed: int,
    max_length: int,
    prompt_template: str = "alpaca",
) -> StateRequest:
    """Steps 1-2 of the module docstring (tokenizer only): the examples and the drawn state rows."""
    examples = tokenize_examples(records, tokenizer, max_length, prompt_template)
    counts = count_target_tokens(examples)
    top_tokens = select_top_tokens(counts, top_k)
    plan = plan_states(examples, top_tokens, max_states, seed)
    logger.info(
        "%d records, %d response tokens, %d with a top-%d target, %d drawn",
        len(examples), plan.n_targets, plan.n_candidates, top_k, len(plan.label),
    )
    return StateRequest(examples, counts, top_tokens, plan)


def collected_states(request: StateRequest, result: PassResult) -> CollectedStates:
    """The ``CollectedStates`` of a pass that was given ``request.plan`` (its examples first)."""
    if not result.layers:
        raise ValueError("no hidden states were drawn: the held-out responses have no top-K targets")
    plan = request.plan
    return CollectedStates(
        layers=result.layers,
        states=result.states,
        labels=plan.label,
        sample_index=plan.sample_index,
        position=plan.position,
        top_tokens=request.top_tokens,
        token_counts={token: request.counts[token] for token in request.top_tokens},
        n_targets=plan.n_targets,
        n_candidates=plan.n_candidates,
        hidden_size=result.hidden_size,
    )


def collect_hidden_states(
    model: torch.nn.Module,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    *,
    top_k: int,
    max_states: int,
    seed: int,
    max_length: int,
    middle_layer: int | None,
    workdir: str | Path,
    batch_size: int = 8,
    prompt_template: str = "alpaca",
) -> CollectedStates:
    """Teacher-forced states at the positions predicting the K most frequent response tokens.

    Args:
        records: held-out records (ual.data schema).
        top_k, max_states, seed, middle_layer: ``analysis`` config keys.
        max_length: sequences are cut here (the training ``max_length``).
        prompt_template: ``model.prompt_template`` (see ``ual.prompts.PROMPT_TEMPLATES``).
        workdir: an existing folder for the ``states_<layer>.npy`` memmaps (the caller deletes it).

    Returns:
        ``CollectedStates`` with ``n = min(max_states, candidates)`` rows, ordered by (record, position).

    Raises:
        ValueError: fewer than 2 distinct targets, ``top_k`` above the distinct targets, ``middle_layer``
            out of range, or a model that does not return hidden states.
    """
    request = plan_collection(
        records, tokenizer, top_k=top_k, max_states=max_states, seed=seed, max_length=max_length,
        prompt_template=prompt_template,
    )
    result = teacher_forced_pass(
        model, request.examples, plan=request.plan, middle_layer=middle_layer, workdir=workdir,
        batch_size=batch_size, max_length=max_length, pad_id=pad_token_id(tokenizer),
    )
    return collected_states(request, result)


def pad_token_id(tokenizer: Any) -> int:
    """The id that pads batches (the EOS id for tokenizers without a pad token)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
