"""HF ``Trainer`` subclass that trains with the UAL loss (per-sample label smoothing) of ``ual.losses``.

Inputs: batches of ``ual.collate.EpsilonCollator`` (``input_ids``, ``labels``, ``epsilon``, ``num_tokens`` and
``attention_mask`` or ``position_ids``). Outputs: gradients, and per-step records (seconds, tokens) in
``UALTrainer.step_records``. Used by ``ual.train``; nothing here parses config.

Normalisation (docs/method.md, "Loss"): the loss of a micro-batch is the sum of its response-token
losses divided by the number of response tokens (after the causal shift) of the whole optimiser step: all
gradient-accumulation micro-batches and, when distributed, all ranks (summed with an all-reduce).
It is counted with ``ual.losses.count_response_tokens``, independent of the model's ``loss_type``
(transformers 5.24.0 counts the same ``labels[..., 1:]`` only for models whose loss is ``ForCausalLMLoss``;
tests/integration/test_train.py checks both agree for Llama), through the Trainer hooks of
``ual.compat.StepNormalisedTrainer``, which also keep Trainer from dividing the already normalised loss by
``gradient_accumulation_steps`` again (under DeepSpeed Trainer passes ``scale_wrt_gas=False`` as well).
Data-parallel backends (DDP, DeepSpeed) average gradients over ranks, so the loss is multiplied by the
number of processes, as Trainer does for ``num_items_in_batch`` losses. The logged loss of a step is the
token mean over that step.

Loss paths (``train.loss_path``):
- ``reference``: the wrapped model's forward gives logits; ``label_smoothed_nll_reference``.
- ``lean``: the wrapped model's forward runs with ``logits_to_keep`` = no position (so DDP/DeepSpeed hooks
  still run and no (B, T, V) logits exist); a forward hook on ``get_decoder()`` captures the last hidden
  states, and ``label_smoothed_nll_lean`` runs on them and the LM head's weight and bias through
  ``ual.lm_head.run_with_head`` (under DeepSpeed ZeRO-3 as the head module's forward, so ZeRO-3 gathers the
  partitioned head for the loss's forward and backward and reduce-scatters its gradient). Refused, naming
  the model and the reason, for models that soft-cap or scale logits (``ual.lm_head.check_lean_supported``)
  and under single-process multi-GPU ``DataParallel`` (its replicas run the decoder on several threads, so the
  hook cannot give one hidden-state tensor: launch with torchrun / deepspeed instead).

Also the runtime helpers of ``ual.train``: ``prepare_deepspeed_env`` (one-process DeepSpeed defaults),
``verify_checkpoint`` (reload, parameter count, no empty tensor) and ``peak_memory``.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from ual.compat import StepNormalisedTrainer, plain_model_loading
from ual.lm_head import check_lean_supported, run_with_head
from ual.losses import count_response_tokens, label_smoothed_nll_lean, label_smoothed_nll_reference


__all__ = [
    "DATA_PARALLEL_ERROR",
    "LOSS_PATHS",
    "StepRecorder",
    "UALTrainer",
    "peak_memory",
    "prepare_deepspeed_env",
    "verify_checkpoint",
]

LOSS_PATHS = ("reference", "lean")

DATA_PARALLEL_ERROR = (
    "train.loss_path 'lean' does not run under single-process multi-GPU torch.nn.DataParallel (Trainer uses "
    "it when one process sees several GPUs; {gpus} visible here): its replicas run the decoder on separate "
    "threads, so the hidden-state hook cannot give one batch-ordered tensor. Launch one process per GPU "
    "(torchrun --nproc_per_node N -m ual.train ... or deepspeed -m ual.train ...), make one GPU visible "
    "(CUDA_VISIBLE_DEVICES=0), or use train.loss_path: reference."
)


class UALTrainer(StepNormalisedTrainer, Trainer):
    """Trainer whose loss is the UAL loss with a global (per optimiser step) token normaliser."""

    def __init__(self, *args: Any, loss_path: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if loss_path not in LOSS_PATHS:
            raise ValueError(f"unknown loss path '{loss_path}'; expected one of {LOSS_PATHS}")
        if loss_path == "lean":
            check_lean_supported(self.model)
            if self.args.n_gpu > 1:  # Trainer wraps the model in DataParallel exactly then
                raise ValueError(DATA_PARALLEL_ERROR.format(gpus=self.args.n_gpu))
        self.loss_path = loss_path
        self.step_tokens = 0  # real (non-pad) input tokens of the current optimiser step, this rank
        self.step_response_tokens = 0

    def count_step_items(self, batch: dict[str, torch.Tensor]) -> int:
        """The loss normaliser's share of one micro-batch: its response tokens after the causal shift."""
        return count_response_tokens(batch["labels"])

    def _hidden_states(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(model, torch.nn.DataParallel):
            raise ValueError(DATA_PARALLEL_ERROR.format(gpus=torch.cuda.device_count()))
        decoder = self.accelerator.unwrap_model(model).get_decoder()
        captured: dict[str, torch.Tensor] = {}

        def hook(module, args, output):
            captured["hidden"] = output[0] if isinstance(output, tuple) else output.last_hidden_state

        handle = decoder.register_forward_hook(hook)
        try:
            model(
                **inputs, logits_to_keep=torch.zeros(0, dtype=torch.long, device=inputs["input_ids"].device)
            )
        finally:
            handle.remove()
        return captured["hidden"]

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        epsilon = inputs.pop("epsilon")
        labels = inputs.pop("labels")
        num_tokens = inputs.pop("num_tokens", None)
        # no KV cache in training: it is useless here, and with a cache transformers skips the packed-sequence
        # (block-diagonal) mask that position_ids imply
        inputs = {**inputs, "use_cache": False}
        if model.training:
            self.step_tokens += int(num_tokens) if num_tokens is not None else labels.numel()
            self.step_response_tokens += count_response_tokens(labels)
        scale = 1.0
        if num_items_in_batch is not None and self.args.world_size > 1:
            scale = float(self.accelerator.num_processes)  # undo the gradient average over ranks
        outputs = None
        if self.loss_path == "lean":
            hidden = self._hidden_states(model, inputs)

            def lean(weight, bias, hidden, labels, epsilon):
                return label_smoothed_nll_lean(
                    hidden, weight, labels, epsilon, bias=bias, num_items=num_items_in_batch
                )

            loss = run_with_head(self.accelerator.unwrap_model(model), lean, hidden, labels, epsilon)
        else:
            outputs = model(**inputs)
            loss = label_smoothed_nll_reference(outputs.logits, labels, epsilon, num_items=num_items_in_batch)
        loss = loss * scale
        return (loss, outputs) if return_outputs else loss


class StepRecorder(TrainerCallback):
    """Wall time and token counts of every optimiser step run in this process."""

    def __init__(self, trainer: UALTrainer):
        self.trainer = trainer
        self.records: list[dict[str, float]] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()
        self.trainer.step_tokens = 0
        self.trainer.step_response_tokens = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.records.append(
            {
                "step": state.global_step,
                "seconds": time.perf_counter() - self._start,
                "tokens": self.trainer.step_tokens,
                "response_tokens": self.trainer.step_response_tokens,
            }
        )


class SkipFinalCheckpoint(TrainerCallback):
    """Trainer saves a full checkpoint (weights + optimizer state) after the last step by default; ual.train
    writes the final weights with ``save_model`` right after, and a finished run never resumes, so that copy
    (12 bytes per parameter under DeepSpeed) is only disk traffic. Intermediate checkpoints are kept."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = False
        return control


# ---- runtime helpers of ual.train ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_deepspeed_env() -> None:
    """Defaults for a one-process DeepSpeed group from a plain ``python -m ual.train`` (no launcher)."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "WORLD_SIZE" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))


def peak_memory() -> dict[str, Any]:
    if torch.cuda.is_available():
        return {"kind": "cuda_max_allocated", "bytes": int(torch.cuda.max_memory_allocated())}
    return {"kind": "rss", "bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def verify_checkpoint(folder: Path, expected_parameters: int) -> dict[str, int]:
    """Reload ``folder``; check its parameter count and that no tensor is all zeros (ZeRO-3 empty save)."""
    from ual.models import load_model

    # Under ZeRO-3 from_pretrained would partition the reloaded copy too (0 local elements per tensor)
    with plain_model_loading():
        model, _ = load_model(str(folder))
    count = sum(p.numel() for p in model.parameters())
    if count != expected_parameters:
        raise RuntimeError(
            f"{folder}: checkpoint has {count} parameters, the trained model {expected_parameters}"
        )
    state = model.state_dict()
    empty = [
        name for name, tensor in state.items() if tensor.numel() == 0 or not tensor.float().abs().sum() > 0
    ]
    if empty:
        raise RuntimeError(
            f"{folder}: {len(empty)} saved tensors are empty or all zero (e.g. {empty[:3]}); "
            "under ZeRO-3 set stage3_gather_16bit_weights_on_model_save: true"
        )
    return {"parameters": count, "tensors": len(state)}
