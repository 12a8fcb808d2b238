"""Collect the hidden states that predict each reference-response token (teacher forcing), memory bounded.

Inputs: a causal LM and its tokenizer (``ual.models.load_model``) and held-out records in the ual.data schema
({id, dataset, instruction, input, output, answer}); ``heldout_records`` draws them for a scenario.
Outputs: ``CollectedStates``: per analysed layer an ``(n, H)`` float32 ``.npy`` memmap in a work folder, and
per row the target token id, the record index and the target's position.

Procedure (``COLLECTION_VERSION``):
1. A record is tokenised exactly as training tokenises it, ``ual.collate.tokenize_example`` under
   ``model.prompt_template`` (alpaca: ``render_alpaca(instruction, input)`` + " " + output + EOS, cut at
   ``max_length`` from the right); the targets are its trained labels except the final EOS, whose state
   encodes "stop here", not a token.
2. Pass 1, tokenizer only: count the response tokens; keep the K most frequent (ties: smaller id). The
   candidate rows are the positions whose target is one of them; ``max_states`` of them are drawn without
   replacement by ``numpy.random.default_rng(seed)``. The draw depends on records, tokenizer and seed only,
   so models that share a tokenizer (SFT / LS / UAL of one base) are compared on the very same positions.
3. Pass 2, model: batched forward with ``output_hidden_states=True`` through the base model (no B x T x V
   logits), only over records holding a drawn row. The state for the target at position t is
   ``hidden_states[layer][:, t - 1]``; drawn rows go to the memmaps batch by batch, so memory holds one
   batch of activations plus index arrays of length ``max_states``, never the states of all tokens.

``hidden_states`` indices follow transformers: 0 = embeddings, i = output of decoder layer i; the last entry
is the final-norm output, i.e. the input of ``lm_head`` (checked for Llama in tests/integration).

Used by ``python -m ual.analysis.clustering`` (the CLI lives there).
Changelog: v1 - initial.
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
    "split_evenly",
    "heldout_records",
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
    examples = tokenize_examples(records, tokenizer, max_length, prompt_template)
    counts = count_target_tokens(examples)
    top_tokens = select_top_tokens(counts, top_k)
    plan = plan_states(examples, top_tokens, max_states, seed)
    logger.info(
        "%d records, %d response tokens, %d with a top-%d target, %d drawn",
        len(examples), plan.n_targets, plan.n_candidates, top_k, len(plan.label),
    )
    # Rows are ordered by example, so each example's rows form one slice.
    row_bounds = np.searchsorted(plan.sample_index, np.arange(len(examples) + 1))
    needed = [i for i in range(len(examples)) if row_bounds[i + 1] > row_bounds[i]]
    needed.sort(key=lambda i: -len(examples[i].input_ids))  # similar lengths per batch: less padding
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    device = next((parameter.device for parameter in model.parameters()), torch.device("cpu"))
    layers: dict[str, int] = {}
    states: dict[str, np.ndarray] = {}
    batches = [needed[start : start + batch_size] for start in range(0, len(needed), batch_size)]
    for batch in tqdm(batches, desc="hidden states", unit="batch", mininterval=5.0):
        width = min(_padded_width(max(len(examples[i].input_ids) for i in batch)), max_length)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, i in enumerate(batch):  # right padding: real positions keep their indices
            input_ids[b, : len(examples[i].input_ids)] = torch.tensor(examples[i].input_ids)
            attention_mask[b, : len(examples[i].input_ids)] = 1
        hidden = _hidden_states(model, input_ids.to(device), attention_mask.to(device))
        if not layers:
            layers = resolve_layers(len(hidden) - 1, middle_layer)
            hidden_size = hidden[-1].shape[-1]
            for name in layers:
                states[name] = np.lib.format.open_memmap(
                    Path(workdir) / f"states_{name}.npy", mode="w+", dtype=np.float32,
                    shape=(len(plan.label), hidden_size),
                )
        rows = np.concatenate([np.arange(row_bounds[i], row_bounds[i + 1]) for i in batch])
        rows_per_example = np.diff(row_bounds)[batch]
        batch_pos = torch.as_tensor(np.repeat(np.arange(len(batch)), rows_per_example), device=device)
        state_pos = torch.as_tensor(plan.position[rows] - 1, device=device)  # t - 1 predicts the target at t
        for name, index in layers.items():
            states[name][rows] = hidden[index][batch_pos, state_pos].float().cpu().numpy()
    for array in states.values():
        array.flush()
    if not layers:
        raise ValueError("no hidden states were drawn: the held-out responses have no top-K targets")
    return CollectedStates(
        layers=layers,
        states=states,
        labels=plan.label,
        sample_index=plan.sample_index,
        position=plan.position,
        top_tokens=top_tokens,
        token_counts={token: counts[token] for token in top_tokens},
        n_targets=plan.n_targets,
        n_candidates=plan.n_candidates,
        hidden_size=hidden_size,
    )


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` items over ``parts`` sources, the remainder to the first ones.

    >>> split_evenly(33, 2)
    [17, 16]
    """
    return [total // parts + (1 if part < total % parts else 0) for part in range(parts)]


def heldout_records(experiment: Any, scenario: str) -> list[dict[str, Any]]:
    """``analysis.eval_samples`` records of the scenario's datasets that are not in its training set.

    Rule: ``ual.data.load_records`` of each dataset slice of the scenario (mixed: high and low, samples split
    evenly), minus every id in ``ual.data.build_scenario(experiment.data, scenario)``, then
    ``ual.data.subsample(pool, size, analysis.seed)``.
    """
    from ual import data
    from ual.config import SCENARIO_SLICES

    data_cfg, analysis = experiment.data, experiment.analysis
    if scenario not in data_cfg.scenarios:
        raise ValueError(
            f"scenario {scenario!r} is not in data.scenarios {list(data_cfg.scenarios)} of experiment "
            f"{experiment.name!r}"
        )
    training_ids = {record["id"] for record in data.build_scenario(data_cfg, scenario)}
    slices = [getattr(data_cfg, name) for name in SCENARIO_SLICES[scenario]]
    records: list[dict[str, Any]] = []
    for data_slice, size in zip(slices, split_evenly(analysis.eval_samples, len(slices)), strict=True):
        if size == 0:
            continue
        loaded = data.load_records(data_slice.dataset, data_slice.split, mirror=data_cfg.mirror)
        pool = [record for record in loaded if record["id"] not in training_ids]
        if len(pool) < size:
            raise ValueError(
                f"analysis.eval_samples asks for {size} held-out records of {data_slice.dataset}/"
                f"{data_slice.split}, but only {len(pool)} of {len(loaded)} are not used for training"
            )
        records.extend(data.subsample(pool, size, analysis.seed))
    logger.info("held-out set for %s: %d records (%d training ids excluded)", scenario, len(records),
                len(training_ids))
    return records
