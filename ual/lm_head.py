"""The LM head as the lean loss path reads it: which heads it can serve, and the head's tensors under ZeRO-3.

``ual.losses.label_smoothed_nll_lean`` takes the LM head as plain tensors, weight (V, H) and bias (V,) or
None, with logits = h @ W.T + b. Between a model and that stand:

- **Logit transforms.** A model that soft-caps or scales its logits after the head (Gemma-2/3
  ``final_logit_softcapping``, Cohere ``logit_scale``, Granite ``logits_scaling``, Falcon-H1
  ``lm_head_multiplier``, ...) breaks the identity of ual.losses: ``check_lean_supported`` raises, naming the
  model, the config attribute and its value. So does a head that is not an ``nn.Linear``.
- **DeepSpeed ZeRO-3.** Outside its module's forward the head weight is a partition (0 local elements, the
  full shape in ``ds_shape``). ``run_with_head`` therefore runs the loss *as the head module's forward* (the
  module's ``forward`` is redirected for that one call), so ZeRO-3's own module hooks do what they do for any
  layer: gather the weight and bias before the forward and release them after; in backward gather them again
  before the loss's backward hands the head's gradient to the parameter's autograd accumulator (whose layout
  must be the full shape then), where ZeRO-3's post-accumulate-grad hook reduce-scatters it into the
  partitioned gradient, and release them after. Gathering by hand (``deepspeed.zero.GatheredParameters``
  around the forward only) does not work: the gradient computed in forward arrives at the accumulator in
  backward, when the parameter is a partition again, and autograd refuses it. A head weight that is still
  not whole inside the head's forward (partitioned by something other than ZeRO-3, or a head that DeepSpeed
  does not manage) raises, naming the model and the weight's shape. Checked against the reference path on 2
  CPU ranks (tests/integration/test_multirank.py).

Used by ``ual.trainer.UALTrainer`` (lean path) and benchmarks/loss.py (``--zero3``). Inputs: a transformers
model or its head module. Outputs: errors, or the head's (weight, bias) inside a context. Which parameters
ZeRO-3 partitions is told by ``ual.compat.is_zero3_parameter``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ual.compat import is_zero3_parameter

__all__ = ["LOGIT_TRANSFORMS", "check_lean_supported", "run_with_head"]

# config attributes that put a non-linear map (or a scale) between h @ W.T and the logits
LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
    "lm_head_multiplier",
    "output_multiplier",
    "output_multiplier_scale",
)


def _model_name(model: torch.nn.Module) -> str:
    path = getattr(getattr(model, "config", None), "name_or_path", "") or ""
    return f"{type(model).__name__}" + (f" ({path})" if path else "")


def check_lean_supported(model: torch.nn.Module) -> None:
    """Raise ``ValueError`` if the lean loss path cannot reproduce this model's logits (naming why)."""
    name = _model_name(model)
    configs = [model.config]
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
    if text_config is not None and text_config is not model.config:
        configs.append(text_config)
    for config in configs:
        for attr in LOGIT_TRANSFORMS:
            value = getattr(config, attr, None)
            if value not in (None, 1, 1.0):
                raise ValueError(
                    f"train.loss_path 'lean' needs plain logits h @ W.T (+ b); {name} transforms them "
                    f"(config.{attr}={value!r}), so the lean loss would not be this model's loss. "
                    "Use train.loss_path: reference."
                )
    head = model.get_output_embeddings()
    if head is None or model.get_decoder() is None:
        raise ValueError(f"train.loss_path 'lean' needs get_decoder() and an LM head; {name} lacks one")
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(
            f"train.loss_path 'lean' needs an nn.Linear LM head; {name} has {type(head).__name__}. "
            "Use train.loss_path: reference."
        )


def _whole(head: torch.nn.Module, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    weight = head.weight
    if weight.dim() != 2 or weight.numel() == 0:
        raise ValueError(
            f"the LM head weight of {_model_name(model)} has shape {tuple(weight.shape)} inside the head's "
            "forward: it is partitioned, and not by a DeepSpeed ZeRO-3 engine that manages this head, so the "
            "lean loss path cannot gather it. Use train.loss_path: reference."
        )
    return weight, getattr(head, "bias", None)


def run_with_head(
    model: torch.nn.Module, loss_fn: Callable[..., torch.Tensor], *tensors: torch.Tensor
) -> torch.Tensor:
    """``loss_fn(weight, bias, *tensors)`` with the LM head's whole weight and bias (ZeRO-3: gathered).

    Under ZeRO-3 the call runs as the head module's forward, so DeepSpeed's hooks gather the head for the
    forward and again for the backward (see the module docstring); ``tensors`` are passed positionally, as
    those hooks only see positional inputs. Otherwise ``loss_fn`` is called directly.
    """
    head = model.get_output_embeddings()
    if not is_zero3_parameter(head.weight):  # nothing to gather
        return loss_fn(*_whole(head, model), *tensors)

    def forward(*inputs: torch.Tensor) -> torch.Tensor:
        return loss_fn(*_whole(head, model), *inputs)

    head.forward = forward  # an instance attribute shadows the class's forward for this one call
    try:
        return head(*tensors)
    finally:
        del head.forward
