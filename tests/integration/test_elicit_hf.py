"""The hf elicitor with the packaged SmolLM2 cut to 2 layers (real weights, real tokenizer).

The 2-layer model puts no answer token among its top 20, so most tests read the whole vocabulary
(``top_logprobs=ALL``); the top-20 truncation itself is checked against separate forward passes.
"""

from __future__ import annotations

import json

import pytest
import torch

from ual.data import load_records, subsample
from ual.elicit import ScoreCache, build_elicit_prompt, elicit_scores, expected_score, main
from ual.elicit.core import split_ten
from ual.elicit.hf import HFElicitor, answer_token_ids

pytestmark = pytest.mark.slow
ALL = 1 << 20  # top_logprobs beyond the vocabulary: every token


@pytest.fixture(scope="module")
def samples(data_mirror) -> list[dict]:
    return subsample(load_records("gsm8k", "train", data_mirror), 3, seed=0) + subsample(
        load_records("alpaca_gpt4_demo", "train", data_mirror), 3, seed=0
    )


class CountingElicitor(HFElicitor):
    """The real HFElicitor, counting the prompts it scores."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, top_logprobs=ALL, **kwargs)
        self.scored = 0

    def score(self, prompts):
        self.scored += len(prompts)
        return super().score(prompts)


def test_smollm2_answer_tokens_are_single_digits_and_ten_is_two_tokens(tiny_smollm2):
    _, tokenizer = tiny_smollm2
    answers, zeros, one_id = answer_token_ids(tokenizer)
    assert [len(answers[str(k)]) for k in range(1, 10)] == [1] * 9 and answers["10"] == []
    assert one_id == tokenizer.convert_tokens_to_ids("1") and zeros == [tokenizer.convert_tokens_to_ids("0")]


def test_scores_in_range_identical_on_rerun_and_cached_rerun_sends_nothing(tiny_smollm2, samples, tmp_path):
    model, tokenizer = tiny_smollm2
    first = CountingElicitor(model, tokenizer, batch_size=3, name="hf:smollm2-2layers")
    rows, stats = elicit_scores(samples, first, ScoreCache(tmp_path / "a.jsonl"), "v1", progress=False)
    assert stats.missing == 0 and first.scored == len(samples)
    assert all(1.0 <= r["score"] <= 10.0 and 0.0 <= r["uncertainty"] <= 1.0 for r in rows)
    assert all(r["answer_mass"] > 0 and r["read_from"] == "logits" and r["requests"] == 0 for r in rows)

    fresh = CountingElicitor(model, tokenizer, batch_size=3, name="hf:smollm2-2layers")
    again, _ = elicit_scores(samples, fresh, ScoreCache(tmp_path / "b.jsonl"), "v1", progress=False)
    assert [r["score"] for r in again] == [r["score"] for r in rows]  # recomputed: identical

    cached = CountingElicitor(model, tokenizer, batch_size=3, name="hf:smollm2-2layers")
    from_cache, stats = elicit_scores(samples, cached, ScoreCache(tmp_path / "a.jsonl"), "v1", progress=False)
    assert cached.scored == 0 and stats.cached == len(samples) and from_cache == rows


def test_batched_equals_one_at_a_time(tiny_smollm2, samples):
    model, tokenizer = tiny_smollm2
    elicitor = HFElicitor(model, tokenizer, batch_size=6, name="hf:x", top_logprobs=ALL)
    prompts = [build_elicit_prompt(r, "v1") for r in samples]
    batched = [r.score for r in elicitor.score(prompts)]
    single = [elicitor.score([p])[0].score for p in prompts]
    assert batched == pytest.approx(single, abs=1e-4)


@torch.inference_mode()
@pytest.mark.parametrize("top_k", [20, 3000, None])  # None: the whole vocabulary
def test_two_token_ten_and_top_k_match_separate_forward_passes(tiny_smollm2, samples, top_k):
    model, tokenizer = tiny_smollm2
    k = top_k or len(tokenizer)
    elicitor = HFElicitor(model, tokenizer, batch_size=1, name="hf:x", top_logprobs=k)
    prompt = build_elicit_prompt(samples[0], "v1")
    reply = elicitor.score([prompt])[0]
    ids = tokenizer(elicitor.render(prompt), return_tensors="pt", add_special_tokens=False)["input_ids"]
    one = tokenizer.convert_tokens_to_ids("1")

    def top(logits: torch.Tensor) -> dict[int, float]:  # token id -> probability, the k most probable
        values, indices = logits.softmax(-1).topk(k)
        return dict(zip(indices.tolist(), values.tolist(), strict=True))

    first = top(model(input_ids=ids).logits[0, -1])
    after_one = top(model(input_ids=torch.cat([ids, torch.tensor([[one]])], 1)).logits[0, -1])
    mass = {str(d): first.get(tokenizer.convert_tokens_to_ids(str(d)), 0.0) for d in range(1, 10)}  # no "10"
    mass = split_ten(mass, after_one.get(tokenizer.convert_tokens_to_ids("0"), 0.0))
    expected = expected_score(mass)
    if expected is None:  # 2 layers: no answer among the top 20, so the sample is missing, not guessed
        assert reply.score is None and reply.answer_mass == 0.0
    else:
        assert reply.score == pytest.approx(expected, rel=1e-5)
        assert reply.answer_mass == pytest.approx(sum(mass.values()), rel=1e-4)


def test_cli_with_a_local_two_layer_checkpoint(tiny_smollm2, tmp_path, data_mirror, monkeypatch,
                                               tiny_variant):
    model, tokenizer = tiny_smollm2
    folder = tmp_path / "smollm2-2layers"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    experiment = tiny_variant(tmp_path, size=2, model=str(folder), batch_size=4, top_logprobs=ALL)
    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    out = tmp_path / "scores.jsonl"
    main(["--experiment", str(experiment), "--out", str(out), "--no-progress"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["dataset"] for r in rows] == ["alpaca_gpt4_demo"] * 2 + ["gsm8k"] * 2
    assert all(1.0 <= r["score"] <= 10.0 and r["elicitor"] == f"hf:{folder}" for r in rows)
    meta = json.loads((tmp_path / "scores.jsonl.meta.json").read_text())
    assert meta["n_requested"] == 4 and meta["provenance"]["stage"] == "elicit"
