"""UAL in TRL: ``UALSFTTrainer``, TRL 1.16.0's ``SFTTrainer`` trained with the UAL loss (per-sample epsilon).

Install: ``pip install -e ".[trl]"`` (pins ``trl==1.16.0``). Use (docs/use-in-your-training.md)::

    from ual import UALSFTTrainer
    trainer = UALSFTTrainer(model=model, args=SFTConfig(...), train_dataset=dataset)  # dataset has "epsilon"
    trainer.train()

The training dataset carries, beside TRL's columns (``prompt``/``completion``, ``messages`` or ``text``):
- ``epsilon``: one float in [0, 1) per sample (the paper), or a list per sample with one value per
  completion token (the tokens TRL trains on, labels != -100), or per token of the completion text alone
  (``python -m ual.elicit --per-token``; TRL's EOS / end of turn take the sample's mean): an extension
  beyond the paper; or
- ``uncertainty``: one float in [0, 1) per sample, mapped to ``eps_min + (eps_max - eps_min) * u``
  (``ual.epsilon.score_to_epsilon``) with the trainer's ``eps_min`` / ``eps_max``.
Every value is checked before training starts; a bad one raises ``EpsilonColumnError`` naming the column
and the first bad row. An evaluation dataset without either column is evaluated with epsilon 0 (plain NLL).

How epsilon reaches the loss: after TRL's own tokenisation (run with truncation and packing held back), a
``token_epsilon`` column holds one value per input token (0 off the completion); truncation, the
packing of TRL (``pack_dataset`` packs every list column) and TRL's collator (wrapped by
``TokenEpsilonCollator``, padding and padding-free alike) then treat it exactly as ``labels``. The column is
kept by ``remove_unused_columns`` (signature columns).

Loss: ``ual.losses.label_smoothed_nll_lean`` on the decoder's last hidden states (one forward, no logits,
no second forward for metrics; TRL's entropy and token-accuracy metrics are therefore not logged), the
LM head through ``ual.lm_head.run_with_head`` (DeepSpeed ZeRO-3 included), divided by the response tokens
(``labels[..., 1:] != -100``) of the whole optimiser step: all gradient-accumulation micro-batches and,
with ``average_tokens_across_devices`` (the default), all ranks, the loss then multiplied by the number of
processes as TRL does. With a constant epsilon this is TRL's ``label_smoothing_factor`` loss; with epsilon 0
its plain NLL (tests/integration/test_trl.py).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from datasets import Dataset
from trl import SFTTrainer
from trl.data_utils import pack_dataset

from ual.elicit.dataset import output_text
from ual.lm_head import check_lean_supported, run_with_head
from ual.losses import IGNORE_INDEX, count_response_tokens, label_smoothed_nll_lean
from ual.epsilon import score_to_epsilon
from ual.trainer import UALTrainer

__all__ = [
    "EPSILON_COLUMN",
    "TOKEN_EPSILON_COLUMN",
    "UNCERTAINTY_COLUMN",
    "EpsilonColumnError",
    "TokenEpsilonCollator",
    "UALSFTTrainer",
    "epsilon_column",
]

EPSILON_COLUMN = "epsilon"
UNCERTAINTY_COLUMN = "uncertainty"
TOKEN_EPSILON_COLUMN = "token_epsilon"


class EpsilonColumnError(ValueError):
    """A training dataset whose epsilon (or uncertainty) column is missing or holds a bad value."""


def _bad_value(value: Any, top: float) -> str | None:
    """Why one value is unusable (not a finite number in [0, 1), or [0, 1] for ``top`` 1), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not math.isfinite(value):
        return f"{value} is not finite"
    if not (0.0 <= value < 1.0 or value == top):
        return f"{value} is outside " + ("[0, 1]" if top == 1.0 else "[0, 1)")
    return None


def _check_values(values: list, column: str, dataset_name: str, top: float = -1.0) -> None:
    for row, value in enumerate(values):
        items = value if isinstance(value, list) else [value]
        for position, item in enumerate(items):
            reason = _bad_value(item, top)
            if reason is not None:
                where = f"row {row}" + (f", token {position}" if isinstance(value, list) else "")
                raise EpsilonColumnError(f"{dataset_name} dataset: column '{column}', {where}: {reason}")


def epsilon_column(dataset: Dataset, eps_min: float, eps_max: float, dataset_name: str = "train") -> Dataset:
    """``dataset`` with a checked ``epsilon`` column (kept, or mapped from ``uncertainty``).

    Raises:
        EpsilonColumnError: neither column exists (naming the columns found), or a value is not a finite
            number in [0, 1) (naming the column and the first bad row).
    """
    columns = dataset.column_names
    if EPSILON_COLUMN in columns:
        _check_values(dataset[EPSILON_COLUMN], EPSILON_COLUMN, dataset_name)
        return dataset
    if UNCERTAINTY_COLUMN not in columns:
        raise EpsilonColumnError(
            f"{dataset_name} dataset has no '{EPSILON_COLUMN}' column (one float in [0, 1) per sample, or a "
            f"list per completion token) and no '{UNCERTAINTY_COLUMN}' column to map; columns: {columns}"
        )
    uncertainty = dataset[UNCERTAINTY_COLUMN]
    if any(isinstance(u, list) for u in uncertainty):
        raise EpsilonColumnError(
            f"{dataset_name} dataset: column '{UNCERTAINTY_COLUMN}' must hold one number per row"
        )
    _check_values(uncertainty, UNCERTAINTY_COLUMN, dataset_name, top=1.0)
    epsilon = [score_to_epsilon(float(u), eps_min, eps_max) for u in uncertainty]
    return dataset.add_column(EPSILON_COLUMN, epsilon)


def _completion_text(example: dict, eos: str | None) -> str | None:
    """The completion's text as ``python -m ual.elicit --per-token`` scored it (TRL's added EOS removed)."""
    completion = example.get("completion")
    if isinstance(completion, str) and eos:  # TRL appends its EOS to a plain completion
        example = {**example, "completion": completion.removesuffix(eos)}
    return output_text(example)


def _find(run: list[int], ids: list[int]) -> int | None:
    """Where ``run`` starts in ``ids`` (the last occurrence), or None."""
    width = len(run)
    for start in range(len(ids) - width, -1, -1):
        if ids[start : start + width] == run:
            return start
    return None


def _spread_tokens(eps: list[float], completion: list[int], text_ids: list[int] | None) -> list[float] | None:
    """One value per completion token: ``eps`` itself, or ``eps`` on the completion text's own tokens found
    inside the completion tokens and the sample's mean on the others (EOS, end of turn); None if neither."""
    if len(eps) == len(completion):
        return list(eps)
    if not eps or text_ids is None or len(text_ids) != len(eps):
        return None
    start = _find(text_ids, completion)
    if start is None:
        return None
    mean = sum(eps) / len(eps)
    return [mean] * start + list(eps) + [mean] * (len(completion) - start - len(eps))


def _token_epsilon(dataset: Dataset, dataset_name: str, map_kwargs: dict, tokenizer: Any) -> Dataset:
    """Add ``token_epsilon`` (one value per input token) from ``epsilon`` and the tokenised ``labels``.

    A per-token ``epsilon`` list has one value per completion token (labels != -100), or one per token of
    the completion text alone (``tokenizer(text, add_special_tokens=False)``, what ``python -m ual.elicit
    --per-token`` writes): those tokens are found among the completion tokens, and the tokens TRL adds
    around them (EOS, the chat template's end of turn) take the sample's mean epsilon.
    """
    eos = getattr(tokenizer, "eos_token", None)

    def spread(example: dict, row: int) -> dict:
        eps, labels = example[EPSILON_COLUMN], example["labels"]
        if not isinstance(eps, list):  # per sample
            return {TOKEN_EPSILON_COLUMN: [0.0 if label == IGNORE_INDEX else float(eps) for label in labels]}
        completion = [label for label in labels if label != IGNORE_INDEX]
        text = _completion_text(example, eos) if len(eps) != len(completion) else None
        text_ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text is not None else None
        values = _spread_tokens(eps, completion, text_ids)
        if values is None:
            text_part = f", {len(text_ids)} of its completion text" if text_ids is not None else ""
            raise EpsilonColumnError(
                f"{dataset_name} dataset: column '{EPSILON_COLUMN}', row {row}: {len(eps)} per-token values "
                f"but the sample has {len(completion)} completion tokens (labels != -100){text_part}"
            )
        values = iter(values)
        return {TOKEN_EPSILON_COLUMN: [0.0 if label == IGNORE_INDEX else next(values) for label in labels]}

    return dataset.map(spread, with_indices=True, remove_columns=[EPSILON_COLUMN], **map_kwargs)


class TokenEpsilonCollator:
    """TRL's collator, plus ``token_epsilon`` padded like ``labels`` (also padding-free) as ``epsilon``."""

    def __init__(self, collator: Any):
        self.collator = collator

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        values = [
            torch.tensor(example.pop(TOKEN_EPSILON_COLUMN), dtype=torch.float32) for example in examples
        ]
        batch = self.collator(examples)
        labels = batch["labels"]
        epsilon = torch.zeros(labels.shape, dtype=torch.float32)
        rows = [torch.cat(values)] if getattr(self.collator, "padding_free", False) else values
        for row, value in enumerate(rows):
            epsilon[row, : value.numel()] = value
        batch[EPSILON_COLUMN] = epsilon
        return batch


class UALSFTTrainer(SFTTrainer):
    """TRL ``SFTTrainer`` whose loss is the UAL loss with the dataset's per-sample (or per-token) epsilon.

    Args:
        eps_min, eps_max: the mapping of an ``uncertainty`` column to epsilon (ignored with ``epsilon``).
        Everything else: as ``trl.SFTTrainer``. ``args.label_smoothing_factor`` must be 0 and
        ``args.loss_type`` "nll": the dataset's epsilon is the smoothing.
    """

    loss_is_scaled_for_ga = True  # divided by the step's token count: Trainer must not divide again

    def __init__(self, *args: Any, eps_min: float = 0.0, eps_max: float = 0.2, **kwargs: Any):
        if not 0.0 <= eps_min <= eps_max < 1.0:
            raise ValueError(f"need 0 <= eps_min <= eps_max < 1, got eps_min={eps_min}, eps_max={eps_max}")
        self.eps_min, self.eps_max = eps_min, eps_max
        config = kwargs.get("args", args[1] if len(args) > 1 else None)
        if getattr(config, "dataset_kwargs", None) and config.dataset_kwargs.get("skip_prepare_dataset"):
            raise ValueError(
                "UALSFTTrainer prepares the dataset itself (epsilon per token): "
                "dataset_kwargs={'skip_prepare_dataset': True} is not supported"
            )
        super().__init__(*args, **kwargs)
        if self.args.label_smoothing_factor or self.args.loss_type != "nll":
            raise ValueError(
                "UALSFTTrainer smooths with the dataset's epsilon: set label_smoothing_factor=0 and "
                f"loss_type='nll' (got {self.args.label_smoothing_factor}, {self.args.loss_type!r})"
            )
        try:
            check_lean_supported(self.model)
        except ValueError as exc:
            raise ValueError(f"UALSFTTrainer computes the lean UAL loss only: {exc}") from None
        self.data_collator = TokenEpsilonCollator(self.data_collator)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if TOKEN_EPSILON_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, TOKEN_EPSILON_COLUMN]

    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        """TRL's tokenisation, then ``token_epsilon``, then TRL's truncation, packing and shuffling."""
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"UALSFTTrainer needs a datasets.Dataset for {dataset_name}, got {type(dataset).__name__}"
            )
        if dataset_name != "train" and not {EPSILON_COLUMN, UNCERTAINTY_COLUMN} & set(dataset.column_names):
            dataset = dataset.add_column(EPSILON_COLUMN, [0.0] * len(dataset))  # evaluation: plain NLL
        dataset = epsilon_column(dataset, self.eps_min, self.eps_max, dataset_name)
        tokenise_only = copy.copy(args)
        tokenise_only.max_length, tokenise_only.shuffle_dataset = None, False
        dataset = super()._prepare_dataset(
            dataset, processing_class, tokenise_only, False, formatting_func, dataset_name
        )
        map_kwargs = {"num_proc": args.dataset_num_proc}
        tokenizer = getattr(processing_class, "tokenizer", processing_class)
        dataset = _token_epsilon(dataset, dataset_name, map_kwargs, tokenizer)
        if args.max_length is not None and not packing:  # as TRL's _prepare_dataset, with token_epsilon
            keep = (
                slice(None, args.max_length)
                if args.truncation_mode == "keep_start"
                else slice(-args.max_length, None)
            )
            columns = ("input_ids", "labels", TOKEN_EPSILON_COLUMN)
            dataset = dataset.map(lambda example: {c: example[c][keep] for c in columns}, **map_kwargs)
            dataset = dataset.filter(
                lambda example: any(x != IGNORE_INDEX for x in example["labels"]), **map_kwargs
            )
        if packing:
            if args.max_length is None:
                raise ValueError("When packing is enabled, `max_length` can't be `None`.")
            dataset = dataset.select_columns(["input_ids", "labels", TOKEN_EPSILON_COLUMN])
            if args.shuffle_dataset:
                dataset = dataset.shuffle(seed=args.seed)
            dataset = pack_dataset(dataset, args.max_length, args.packing_strategy, map_kwargs)
        return dataset.shuffle(seed=args.seed) if args.shuffle_dataset else dataset

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """Response tokens (``labels[..., 1:] != -100``) of the step; summed over ranks as TRL/Trainer do."""
        if not batch_samples:
            return None
        count = torch.tensor(sum(count_response_tokens(b["labels"]) for b in batch_samples), device=device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return count

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        epsilon, labels = inputs.pop(EPSILON_COLUMN), inputs.pop("labels")
        inputs = {**inputs, "use_cache": False}
        hidden = UALTrainer._hidden_states(self, model, inputs)  # one forward, no logits

        def lean(weight, bias, hidden, labels, epsilon):
            return label_smoothed_nll_lean(
                hidden, weight, labels, epsilon, bias=bias, num_items=num_items_in_batch
            )

        loss = run_with_head(self.accelerator.unwrap_model(model), lean, hidden, labels, epsilon)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # undo the gradient average over ranks, as TRL
        if not return_outputs:
            return loss
        with torch.no_grad():  # the logits, for compute_metrics only: an extra forward, as in TRL
            return loss, model(**inputs)
