"""``elicit.method: entropy`` with the packaged SmolLM2 cut to 2 layers: the mean predictive entropy of the
reference response equals a hand computation, batched equals one at a time, uncertainty is in [0, 1],
and a rerun (recomputed or from the cache) is identical."""

from __future__ import annotations

import json

import pytest
import torch

from ual.experiment import load_experiment
from ual.data import load_records, subsample
from ual.elicit import ScoreCache, elicit_scores, main, read_scores, scores_identity
from ual.elicit.entropy import EntropyElicitor, normalise_entropy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def samples(data_mirror) -> list[dict]:
    return subsample(load_records("gsm8k", "train", data_mirror), 2, seed=1) + subsample(
        load_records("alpaca_gpt4_demo", "train", data_mirror), 2, seed=1
    )


class Counting(EntropyElicitor):
    scored = 0

    def score(self, inputs):
        self.scored += len(inputs)
        return super().score(inputs)


@torch.inference_mode()
def test_entropy_is_the_mean_over_response_tokens_of_minus_sum_p_log_p(tiny_smollm2, samples):
    model, tokenizer = tiny_smollm2
    elicitor = EntropyElicitor(model, tokenizer, batch_size=4, name="hf:x")
    inputs = [elicitor.build_input(r, "v1") for r in samples]
    batched = [reply.score for reply in elicitor.score(inputs)]
    prefix, response = inputs[0]
    head = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    tail = tokenizer(response, add_special_tokens=False)["input_ids"]
    logits = model(input_ids=torch.tensor([head + tail])).logits[0].double()
    p = logits.softmax(-1)[len(head) - 1 : -1]  # the distributions that predict the response tokens
    by_hand = float((-(p * p.log()).sum(-1)).mean())
    assert len(tail) > 5 and batched[0] == pytest.approx(by_hand, rel=1e-4)
    single = [elicitor.score([x])[0].score for x in inputs[1:]]
    assert batched[1:] == pytest.approx(single, rel=1e-4)  # right padding changes nothing


def test_uncertainty_in_unit_interval_and_reruns_identical(tiny_smollm2, samples, tmp_path):
    model, tokenizer = tiny_smollm2
    first = Counting(model, tokenizer, batch_size=2, name="hf:smollm2-2layers")
    rows, stats = elicit_scores(samples, first, ScoreCache(tmp_path / "a.jsonl"), "v1", progress=False)
    rows, span = normalise_entropy(rows)
    assert stats.missing == 0 and first.scored == 4
    assert all(r["source"] == "entropy" and r["read_from"] == "entropy" and r["score"] > 0 for r in rows)
    assert all(0.0 <= r["uncertainty"] <= 1.0 for r in rows)
    assert min(r["uncertainty"] for r in rows) == 0.0 and max(r["uncertainty"] for r in rows) == 1.0
    assert span["entropy_min"] < span["entropy_max"]
    again, _ = elicit_scores(samples, Counting(model, tokenizer, 2, "hf:smollm2-2layers"),
                             ScoreCache(tmp_path / "b.jsonl"), "v1", progress=False)
    assert [r["uncertainty"] for r in normalise_entropy(again)[0]] == [r["uncertainty"] for r in rows]
    assert [r["score"] for r in again] == [r["score"] for r in rows]  # recomputed: identical
    cached = Counting(model, tokenizer, batch_size=2, name="hf:smollm2-2layers")
    from_cache, stats = elicit_scores(samples, cached, ScoreCache(tmp_path / "a.jsonl"), "v1", progress=False)
    assert cached.scored == 0 and normalise_entropy(from_cache)[0] == rows


def test_cli_writes_an_entropy_scores_file(tiny_smollm2, tmp_path, data_mirror, monkeypatch, tiny_variant):
    model, tokenizer = tiny_smollm2
    folder = tmp_path / "smollm2-2layers"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    path = tiny_variant(tmp_path, size=2, model=str(folder), method="entropy")
    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    out = tmp_path / "scores.jsonl"
    main(["--experiment", str(path), "--out", str(out), "--no-progress"])
    rows = read_scores(out, scores_identity(load_experiment(path).elicit))  # method and scorer "entropy"
    assert len(rows) == 4 and {r["source"] for r in rows} == {"entropy"}
    assert sorted(r["uncertainty"] for r in rows)[0] == 0.0 and max(r["uncertainty"] for r in rows) == 1.0
    meta = json.loads((tmp_path / "scores.jsonl.meta.json").read_text())
    assert meta["source"] == "entropy" and meta["entropy_min"] == min(r["score"] for r in rows)
