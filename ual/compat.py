"""Every reliance of ``ual`` on transformers, accelerate or DeepSpeed behaviour that is not their public API.

Each shim below names the library version whose source it was written against and checked with (the
tests named beside it fail when a new version breaks it). Pinned in pyproject.toml: transformers 5.24.0,
accelerate 1.15.0, deepspeed 0.19.8. When upgrading one of them, read this module first; nothing else in
``ual`` touches these internals.

- ``StepNormalisedTrainer`` (transformers 5.24.0 ``Trainer``): the ``get_batch_samples(epoch_iterator,
  num_batches, device)`` hook, which ``Trainer._inner_training_loop`` calls once per optimiser step and whose
  second return value it passes to ``compute_loss`` as ``num_items_in_batch``; and the class attribute
  ``loss_is_scaled_for_ga`` (``True``: ``training_step`` does not divide the loss by the number of
  gradient-accumulation micro-batches). Checked by tests/integration/test_train.py (gradient accumulation,
  the count equals ``Trainer._get_num_items_in_batch`` for shifted labels) and test_multirank.py.
- ``plain_model_loading`` (transformers 5.24.0 ``transformers.integrations.deepspeed``): the module global
  ``_hf_deepspeed_config_weak_ref``, through which ``from_pretrained`` partitions every model it loads under
  ZeRO-3; set aside while a checkpoint is reloaded for verification, then restored. Checked by
  tests/integration/test_train_deepspeed.py (ZeRO-3).
- ``full_numel`` and ``is_zero3_parameter`` (deepspeed 0.19.8 ``deepspeed.runtime.zero``): a ZeRO-3
  partitioned parameter carries ``ds_id`` and ``ds_numel`` (its whole element count) while its local data has
  0 elements. Checked by test_train_deepspeed.py and test_multirank.py.
- ``drop_quantizer`` (transformers 5.24.0 ``PreTrainedModel``): a model loaded from a GGUF file keeps the
  GGUF ``hf_quantizer`` and ``config.quantization_config``, which make ``save_pretrained`` refuse although the
  weights are already dequantised to float. Checked by tests/integration/test_models.py (the conversion).
- The checkpoint folder layout read by ``ual.checkpoints`` (transformers 5.24.0 ``Trainer._save_checkpoint``
  writes ``checkpoint-<global step>/`` with ``trainer_state.json`` last, and ``optimizer.pt`` or, under
  DeepSpeed 0.19.8, a ``latest`` file naming the folder of ``*optim_states.pt``): on-disk names, not code,
  so they are spelled there. Checked by tests/unit/test_checkpoints.py and test_train.py (kill, resume).

Used by ``ual.trainer``, ``ual.train``, ``ual.lm_head`` and ``ual.models``; no command of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = [
    "StepNormalisedTrainer",
    "drop_quantizer",
    "full_numel",
    "is_zero3_parameter",
    "plain_model_loading",
]


class StepNormalisedTrainer:
    """A mixin, listed before ``transformers.Trainer`` in a subclass's bases: its ``compute_loss`` gets, as
    ``num_items_in_batch``, the count of ``count_step_items`` over all micro-batches of the optimiser step
    (summed over ranks), and returns a loss already normalised by it (so Trainer does not divide by the
    accumulation steps again). Subclasses define ``count_step_items(batch) -> int``. A mixin, so that this
    module imports no transformers (``ual.lm_head`` and model loading use its other shims)."""

    loss_is_scaled_for_ga = True

    def count_step_items(self, batch: dict[str, torch.Tensor]) -> int:
        raise NotImplementedError

    def get_batch_samples(self, epoch_iterator: Iterator, num_batches: int, device: torch.device):
        """The micro-batches of one optimiser step and their global item count (``count_step_items``)."""
        batch_samples = []
        for _ in range(num_batches):
            try:
                batch_samples.append(next(epoch_iterator))
            except StopIteration:
                break
        local = sum(self.count_step_items(batch) for batch in batch_samples)
        count = torch.tensor(local, dtype=torch.long, device=device)
        if self.args.world_size > 1:
            count = self.accelerator.reduce(count, reduction="sum")
        return batch_samples, count


@contextmanager
def plain_model_loading():
    """Inside: ``from_pretrained`` loads whole (not ZeRO-3 partitioned) models; the run's DeepSpeed config
    is restored on exit."""
    from transformers.integrations import deepspeed as hf_deepspeed

    active = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = active


def is_zero3_parameter(parameter: torch.Tensor) -> bool:
    """Whether ``parameter`` is managed (partitioned) by a DeepSpeed ZeRO-3 engine."""
    return hasattr(parameter, "ds_id")


def full_numel(parameter: torch.Tensor) -> int:
    """The element count of the whole parameter, also when ZeRO-3 holds only a partition of it here."""
    return parameter.ds_numel if hasattr(parameter, "ds_numel") else parameter.numel()


def drop_quantizer(model: Any) -> None:
    """Make a model loaded from GGUF (weights dequantised to float) savable as a plain checkpoint."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
