"""Training examples for SFT/UAL: prompt masking, truncation, packing, collation (prompts: ``ual.prompts``).

Inputs: records of ``ual.data`` ({id, dataset, instruction, input, output, answer}), one epsilon per record
(from the epsilon file of ``ual.smoothing``), a tokenizer and ``model.prompt_template``.
Outputs: a ``TrainDataset`` of tokenised examples and ``EpsilonCollator``, whose batches are
``input_ids``, ``labels`` (-100 on prompt and padding), ``epsilon`` and either ``attention_mask`` (padded
rows) or ``position_ids`` (packed rows), plus ``num_tokens`` (real tokens, for tokens/s).

Choices (the MetaMath recipe, docs/method.md "Training recipe", unless stated):
- Prompt and response text and their token ids come from ``ual.prompts`` (``tokenize_prompt_response``),
  the module generation renders and tokenises with too, so the prompt ids of training are the ids generation
  feeds the model (templates ``alpaca`` and ``chat``, the token boundary and the special tokens: see there).
  The -100 mask falls exactly on the prompt ids.
- EOS is a trained label, also when pad == eos: padding is masked by position (collator lengths), never by
  token id.
- Truncation: the concatenation is cut to ``max_length`` from the right (the MetaMath rule); a sample whose
  response is cut away entirely keeps no loss token and is counted in the log.
- Packing (``train.packing``): consecutive examples are concatenated greedily in data order into rows of at
  most ``max_length`` tokens (no example is split). ``position_ids`` restart at 0 for every segment and no
  ``attention_mask`` is passed, so transformers' mask builder (``find_packed_sequence_indices``) makes the
  attention block-diagonal: segments never attend to each other, with eager and SDPA attention on CPU as on
  GPU. transformers 5.24 only does so without a KV cache, so ``ual.trainer`` calls the model with
  ``use_cache=False`` (tests/integration/test_train.py checks packed == unpacked loss). ``epsilon``
  becomes per token, each segment carrying its own value. Trailing padding is one more segment with
  label -100.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ual.losses import IGNORE_INDEX
from ual.prompts import tokenize_prompt_response

logger = logging.getLogger(__name__)

__all__ = [
    "EpsilonCollator",
    "TrainDataset",
    "build_examples",
    "pack_examples",
    "tokenize_example",
]


def tokenize_example(record: dict, tokenizer: Any, template: str, max_length: int) -> dict[str, Any]:
    """Token ids and labels of one record: prompt -> -100, response + EOS -> trained labels.

    Returns ``{"input_ids": list[int], "labels": list[int], "truncated": bool}`` of equal lengths
    <= ``max_length``.
    """
    prompt_ids, response_ids = tokenize_prompt_response(record, tokenizer, template)
    input_ids = prompt_ids + response_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + list(response_ids)
    truncated = len(input_ids) > max_length
    return {"input_ids": input_ids[:max_length], "labels": labels[:max_length], "truncated": truncated}


def build_examples(
    records: Sequence[dict], epsilon: Sequence[float], tokenizer: Any, template: str, max_length: int
) -> list[dict[str, Any]]:
    """Tokenised examples in record order, each with its sample's ``epsilon`` and ``id``."""
    if len(records) != len(epsilon):
        raise ValueError(f"{len(records)} records but {len(epsilon)} epsilon values")
    examples, truncated, empty = [], 0, 0
    for record, eps in zip(records, epsilon, strict=True):
        example = tokenize_example(record, tokenizer, template, max_length)
        truncated += example.pop("truncated")
        empty += all(label == IGNORE_INDEX for label in example["labels"][1:])
        examples.append({**example, "epsilon": float(eps), "id": record["id"]})
    if truncated:
        logger.warning(
            "%d of %d samples truncated to max_length=%d (%d keep no response token)",
            truncated,
            len(examples),
            max_length,
            empty,
        )
    return examples


def pack_examples(examples: Sequence[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    """Greedy in-order packing into rows of <= ``max_length`` tokens, with per-token epsilon.

    Each row: ``input_ids``, ``labels``, ``position_ids`` (restarting at 0 per segment), ``epsilon``
    (one value per token: the segment's sample epsilon) and ``ids`` (the packed sample ids).
    """
    rows: list[dict[str, Any]] = []
    current: dict[str, list] = {}
    for example in examples:
        n = len(example["input_ids"])
        if current and len(current["input_ids"]) + n > max_length:
            rows.append(current)
            current = {}
        if not current:
            current = {"input_ids": [], "labels": [], "position_ids": [], "epsilon": [], "ids": []}
        current["input_ids"] += example["input_ids"]
        # the first token of a segment is never predicted from the previous segment
        current["labels"] += [IGNORE_INDEX] + example["labels"][1:]
        current["position_ids"] += list(range(n))
        current["epsilon"] += [example["epsilon"]] * n
        current["ids"].append(example["id"])
    if current:
        rows.append(current)
    return rows


class TrainDataset(torch.utils.data.Dataset):
    """A list of tokenised (or packed) examples; indexable, as Trainer's samplers need."""

    def __init__(self, examples: Sequence[dict[str, Any]]):
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.examples[index]


@dataclass
class EpsilonCollator:
    """Right-pads a list of examples into tensors; keeps epsilon (see module docstring for the keys)."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        batch = len(features)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)
        lengths = torch.tensor([len(f["input_ids"]) for f in features])
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[row, :n] = torch.tensor(feature["input_ids"])
            labels[row, :n] = torch.tensor(feature["labels"])
        out = {"input_ids": input_ids, "labels": labels, "num_tokens": lengths.sum()}
        if "position_ids" in features[0]:  # packed rows: per-token epsilon, no attention mask
            position_ids = torch.arange(width).repeat(batch, 1)
            epsilon = torch.zeros((batch, width), dtype=torch.float32)
            for row, feature in enumerate(features):
                n = len(feature["input_ids"])
                position_ids[row, :n] = torch.tensor(feature["position_ids"])
                position_ids[row, n:] = torch.arange(width - n)  # padding: its own segment
                epsilon[row, :n] = torch.tensor(feature["epsilon"], dtype=torch.float32)
            out.update(position_ids=position_ids, epsilon=epsilon)
        else:
            out["attention_mask"] = (torch.arange(width)[None, :] < lengths[:, None]).long()
            out["epsilon"] = torch.tensor([f["epsilon"] for f in features], dtype=torch.float32)
        return out
