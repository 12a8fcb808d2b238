"""ual.lm_head: which LM heads the lean loss path can serve, against real (tiny, random) transformers models.

For a plain head the lean loss from the decoder's hidden states equals the reference loss on the model's own
logits; for models that soft-cap or scale their logits it does not, and check_lean_supported refuses them,
naming the model and the config attribute.

Run: python -m pytest tests/unit/test_lm_head.py
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    CohereConfig,
    CohereForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    GraniteConfig,
    GraniteForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
)

from ual.lm_head import check_lean_supported, run_with_head
from ual.losses import label_smoothed_nll_lean, label_smoothed_nll_reference

SIZES = {
    "vocab_size": 97,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
}
TRANSFORMED = [
    (
        Gemma2ForCausalLM,
        Gemma2Config(**SIZES, head_dim=8, final_logit_softcapping=5.0),
        "final_logit_softcapping",
    ),
    (CohereForCausalLM, CohereConfig(**SIZES, logit_scale=0.25), "logit_scale"),
    (GraniteForCausalLM, GraniteConfig(**SIZES, logits_scaling=4.0), "logits_scaling"),
]


def _losses(model):
    """(lean loss from the decoder's hidden states and the head, reference loss on the model's logits)."""
    torch.manual_seed(0)
    ids = torch.randint(0, SIZES["vocab_size"], (2, 9))
    labels = ids.clone()
    labels[:, :3] = -100
    eps = torch.tensor([0.1, 0.3])
    with torch.no_grad():
        hidden = model.get_decoder()(input_ids=ids).last_hidden_state
        logits = model(input_ids=ids).logits
        lean = run_with_head(
            model, lambda w, b, h, y, e: label_smoothed_nll_lean(h, w, y, e, bias=b), hidden, labels, eps
        )
        return lean, label_smoothed_nll_reference(logits, labels, eps)


@pytest.mark.parametrize("with_bias", [False, True])
def test_plain_head_is_served_and_lean_equals_the_models_own_loss(with_bias):
    torch.manual_seed(1)
    model = LlamaForCausalLM(LlamaConfig(**SIZES, tie_word_embeddings=False)).eval()
    if with_bias:
        model.lm_head = torch.nn.Linear(16, SIZES["vocab_size"], bias=True)
    check_lean_supported(model)
    lean, reference = _losses(model)
    torch.testing.assert_close(lean, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("model_class", "config", "attr"), TRANSFORMED, ids=[t[2] for t in TRANSFORMED])
def test_transformed_logits_are_refused_naming_model_and_reason(model_class, config, attr):
    torch.manual_seed(2)
    model = model_class(config).eval()
    with pytest.raises(ValueError, match=rf"{model_class.__name__}.*config\.{attr}=.*loss_path: reference"):
        check_lean_supported(model)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(30.0)  # logits of a few units, where the transform shows
    lean, reference = _losses(model)  # why: the lean loss would not be this model's loss
    assert abs(lean.item() - reference.item()) > 0.05


def test_non_linear_head_is_refused():
    model = LlamaForCausalLM(LlamaConfig(**SIZES))
    model.lm_head = torch.nn.Sequential(torch.nn.Linear(16, SIZES["vocab_size"]))
    with pytest.raises(ValueError, match="needs an nn.Linear LM head; LlamaForCausalLM has Sequential"):
        check_lean_supported(model)


def test_head_partitioned_by_something_other_than_zero3_cannot_be_gathered():
    """Fault injection: a head weight with 0 local elements and no DeepSpeed ZeRO-3 metadata."""
    model = LlamaForCausalLM(LlamaConfig(**SIZES, tie_word_embeddings=False))
    model.lm_head.weight.data = torch.empty(0)
    with pytest.raises(ValueError, match=r"LlamaForCausalLM has shape \(0,\).*cannot gather it"):
        run_with_head(model, lambda w, b: w.sum())
