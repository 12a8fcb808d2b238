"""alpaca_eval's stock annotators over HTTP against a real OpenAI-compatible server (llama.cpp serving
SmolLM2, fixture ``llama_server``), keyless, through ual's judge path: the weighted (logprob) AlpacaEval 2
annotator in both orders, and the AlpacaEval 1 ranking annotator, whose format SmolLM2 does not write, in
alpaca_eval's random order (one request of up to 100 generated tokens: the expensive one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ual.experiment import load_experiment
from ual.evaluate import evaluate_task
from ual.tasks import TASKS

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _setup(tmp_path: Path, data_mirror: Path, server, judge: str, n: int, orders: str | None = None):
    """An experiment judging ``n`` pairs at the server; short outputs on both sides keep the prompts small."""
    source = data_mirror / "alpaca_eval/results/text_davinci_003/model_outputs.json"
    short = tmp_path / "references.json"
    rows = json.loads(source.read_text())
    short.write_text(json.dumps([{"instruction": r["instruction"], "output": r["output"][:160]}
                                  for r in rows]))
    experiment = load_experiment(REPO / "experiments/tiny.yaml")
    update = {
        "sizes": {"alpacaeval": n, "gsm8k": 1, "math": 1},
        "judge": judge,
        "judge_model": server.alias,
        "judge_base_url": server.base_url,
        "judge_api_key_env": None,  # a keyless local server
        "judge_orders": orders,  # null: not the stock judge on its own API, so both orders
        "reference_outputs": str(short),
    }
    experiment = experiment.model_copy(update={"evaluate": experiment.evaluate.model_copy(update=update)})
    answers = ["Paris is the capital of France.", "I do not know.", "Here are three ideas: walk, read, cook."]
    rows = [
        {"instruction": r["instruction"], "output": answers[i % 3], "generator": "stub_model", "id": r["id"]}
        for i, r in enumerate(TASKS["alpacaeval"].records(experiment))
    ]
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(rows))
    return experiment, outputs


def test_weighted_annotator_over_http_gives_continuous_preferences_in_both_orders(
    tmp_path, data_mirror, llama_server, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # keyless: no key anywhere
    experiment, outputs = _setup(tmp_path, data_mirror, llama_server, "weighted_alpaca_eval_gpt4_turbo", 3)
    out = tmp_path / "eval/alpacaeval.json"
    metrics = evaluate_task(experiment, "alpacaeval", outputs, out)
    pairs = json.loads(out.with_suffix(".annotations.json").read_text())
    assert metrics["judge"]["keyless"] and metrics["judge_orders"] == "both"
    assert metrics["judge_prompts_this_run"] == 6 and metrics["n_unparsed"] == 0 and metrics["n_total"] == 3
    for pair in pairs:
        for key in ("preference_reference_first", "preference_model_first", "preference"):
            assert 1.0 <= pair[key] <= 2.0, (key, pair[key])
    assert 0.0 <= metrics["position_bias"] <= 100.0
    again = evaluate_task(experiment, "alpacaeval", outputs, out)  # alpaca_eval's cache, keyed by order
    assert again["judge_prompts_this_run"] == 0 and again["win_rate"] == pytest.approx(metrics["win_rate"])


def test_ranking_annotator_replies_that_do_not_parse_are_counted_per_model(
    tmp_path, data_mirror, llama_server, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    experiment, outputs = _setup(tmp_path, data_mirror, llama_server, "alpaca_eval_gpt4", 1, "random")
    out = tmp_path / "eval/alpacaeval.json"
    metrics = evaluate_task(experiment, "alpacaeval", outputs, out)
    pairs = json.loads(out.with_suffix(".annotations.json").read_text())
    assert metrics["judge_prompts_this_run"] == 1 and metrics["judge_on_unparsed"] == "report"
    # SmolLM2 does not write alpaca_eval's ranking format (it starts a Python snippet at temperature 0): the
    # pair has no verdict, none is made up, and the metrics say so
    assert metrics["n_unparsed"] == metrics["n_pairs"] == 1 and metrics["n_total"] == 0
    ((pair,),) = (pairs,)
    shown = "model_first" if pair["shown_first"] == "model" else "reference_first"
    assert metrics["unparsed"] == [{"instruction": pair["instruction"], "orders": [shown]}]
    assert pair["preference"] is None and pair["second_shown_share"] is None
    assert metrics["win_rate"] is None and metrics["position_bias"] is None
    assert not Path(metrics["annotations_cache"]).exists() or json.loads(
        Path(metrics["annotations_cache"]).read_text()) == []  # asked again next run
