"""Both-orders judging through alpaca_eval's own annotator, with stub judges registered as completions
functions (fault injection: a judge that reads only position, one that reads only length, one that fails in
one order), the unparsed-verdict policy, named reference sets and the keyless client."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ual.experiment import load_experiment
from ual.data import DataError
from ual.evaluate import evaluate_task
from ual.tasks import TASKS

REPO = Path(__file__).resolve().parents[2]
judges = pytest.importorskip("ual.judges")
from ual.judges import local as local_judge  # noqa: E402
from ual.tasks import alpacaeval_references as refs  # noqa: E402

TEMPLATE = "Instruction: {instruction}\n[[1]]{output_1}[[/1]]\n[[2]]{output_2}[[/2]]\nWhich is better?"
FIRST, SECOND = "[{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]", (
    "[{'model': 'model_1', 'rank': 2}, {'model': 'model_2', 'rank': 1}]"
)


def _shown(prompt: str) -> tuple[str, str]:
    first = re.search(r"\[\[1\]\](.*?)\[\[/1\]\]", prompt, re.S).group(1)
    second = re.search(r"\[\[2\]\](.*?)\[\[/2\]\]", prompt, re.S).group(1)
    return first, second


def _completions(verdict):
    """A completions function in alpaca_eval's shape whose reply is ``verdict(first, second)``."""
    calls: list[tuple[str, str]] = []

    def fn(prompts, **_):
        shown = [_shown(p) for p in prompts]
        calls.extend(shown)
        return {
            "completions": [verdict(a, b) for a, b in shown],
            "price_per_example": [0.0] * len(prompts),
            "time_per_example": [0.0] * len(prompts),
        }

    fn.calls = calls
    return fn


def _stub_config(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "prompt.txt").write_text(TEMPLATE)
    (folder / "configs.yaml").write_text(
        yaml.safe_dump(
            {
                name: {
                    "prompt_template": str(folder / "prompt.txt"),
                    "fn_completions": name,
                    "fn_completion_parser": "ranking_parser",
                    "batch_size": 1,
                }
            }
        )
    )
    return folder


def _experiment(tmp_path: Path, name: str, fn, monkeypatch, n: int = 4, **evaluate):
    monkeypatch.setitem(local_judge.COMPLETIONS, name, fn)
    judge = _stub_config(tmp_path / name, name)
    experiment = load_experiment(REPO / "experiments/tiny.yaml")
    update = {"sizes": {"alpacaeval": n, "gsm8k": 1, "math": 1}, "judge": str(judge),
              "judge_model": "stub", "judge_orders": None, **evaluate}
    return experiment.model_copy(update={"evaluate": experiment.evaluate.model_copy(update=update)})


def _outputs(tmp_path: Path, experiment, text=lambda i: f"A model answer ({i}).") -> Path:
    rows = [
        {"instruction": r["instruction"], "output": text(i), "generator": "stub_model", "id": r["id"]}
        for i, r in enumerate(TASKS["alpacaeval"].records(experiment))
    ]
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(rows))
    return path


def _run(experiment, outputs: Path, out: Path):
    metrics = evaluate_task(experiment, "alpacaeval", outputs, out)
    return metrics, json.loads(out.with_suffix(".annotations.json").read_text())


def test_a_judge_that_always_picks_the_second_shown_output_draws_every_pair(
    tmp_path, data_mirror, monkeypatch
):
    stub = _completions(lambda first, second: SECOND)
    experiment = _experiment(tmp_path, "stub_second", stub, monkeypatch)
    outputs = _outputs(tmp_path, experiment)
    metrics, pairs = _run(experiment, outputs, tmp_path / "eval/alpacaeval.json")
    # a config folder of our own is not a stock judge: null resolves to both orders
    annotator = metrics["judge"]["annotator"]
    assert metrics["judge_orders"] == "both"
    assert annotator.startswith("stub_second__stub-") and annotator.endswith("__fixed_order")
    assert [p["preference"] for p in pairs] == [1.5] * 4
    assert [(p["preference_reference_first"], p["preference_model_first"]) for p in pairs] == [(2.0, 1.0)] * 4
    assert metrics["win_rate"] == pytest.approx(50.0) and metrics["n_draws"] == 4
    assert metrics["position_bias"] == pytest.approx(100.0) and metrics["n_unparsed"] == 0
    # each pair was shown once each way: reference first, then model first
    references = {p["output_1"] for p in pairs}
    assert len(stub.calls) == 8 and sum(first in references for first, _ in stub.calls) == 4
    assert metrics["judge_prompts_this_run"] == 8
    again, _ = _run(experiment, outputs, tmp_path / "eval/alpacaeval.json")  # both orders come from the cache
    assert again["judge_prompts_this_run"] == 0 and len(stub.calls) == 8 and again["win_rate"] == 50.0


def test_a_judge_that_prefers_the_longer_output_follows_length_in_either_order(
    tmp_path, data_mirror, monkeypatch
):
    stub = _completions(lambda first, second: FIRST if len(first) > len(second) else SECOND)
    experiment = _experiment(tmp_path, "stub_longer", stub, monkeypatch, n=6)
    # even items: one word, odd items: longer than any reference output (the longest has 6,630 characters)
    outputs = _outputs(tmp_path, experiment, lambda i: "Yes." if i % 2 == 0 else "long answer " * 800)
    metrics, pairs = _run(experiment, outputs, tmp_path / "eval/alpacaeval.json")
    expected = [2.0 if len(p["output_2"]) > len(p["output_1"]) else 1.0 for p in pairs]
    assert [p["preference_reference_first"] for p in pairs] == expected
    assert [p["preference_model_first"] for p in pairs] == expected
    assert [p["preference"] for p in pairs] == expected and 1.0 in expected and 2.0 in expected
    assert metrics["win_rate"] == pytest.approx(100 * (sum(expected) / len(expected) - 1))
    assert metrics["n_draws"] == 0
    assert metrics["position_bias"] == pytest.approx(50.0)  # content decides, position does not


def test_random_order_is_alpaca_evals_draw_and_its_bias_is_measured_on_it(tmp_path, data_mirror, monkeypatch):
    stub = _completions(lambda first, second: FIRST)  # always the first-shown output
    experiment = _experiment(tmp_path, "stub_first", stub, monkeypatch, n=8, judge_orders="random")
    outputs = _outputs(tmp_path, experiment)
    metrics, pairs = _run(experiment, outputs, tmp_path / "eval/alpacaeval.json")
    assert metrics["judge_orders"] == "random" and not metrics["judge"]["annotator"].endswith("__fixed_order")
    assert len(stub.calls) == 8
    shown_first = {second: first for first, second in stub.calls}  # what the judge really saw, per pair
    for pair in pairs:
        model_first = pair["output_2"] not in shown_first  # the model output was never shown second
        assert pair["shown_first"] == ("model" if model_first else "reference")
        assert pair["preference"] == (2.0 if model_first else 1.0)
    # ual's reading of alpaca_eval's draw is right on every pair: the first-shown output always won
    assert metrics["position_bias"] == pytest.approx(0.0)
    assert "confounded" in metrics["position_bias_note"]


def test_unparsed_verdicts_are_counted_and_named_or_fatal_and_never_cached(
    tmp_path, data_mirror, monkeypatch
):
    # replies that fail to parse whenever the model output is shown first
    stub = _completions(lambda first, second: "I cannot decide." if first.startswith("A model") else SECOND)
    experiment = _experiment(tmp_path, "stub_half", stub, monkeypatch, n=3)
    outputs = _outputs(tmp_path, experiment)
    out = tmp_path / "eval/alpacaeval.json"
    metrics, pairs = _run(experiment, outputs, out)
    assert metrics["n_unparsed"] == 3 and metrics["n_pairs"] == 3 and metrics["n_total"] == 0
    assert metrics["win_rate"] is None and metrics["position_bias"] is None
    assert {u["instruction"] for u in metrics["unparsed"]} == {p["instruction"] for p in pairs}
    assert all(u["orders"] == ["model_first"] for u in metrics["unparsed"])
    assert all(p["preference"] is None and p["preference_reference_first"] == 2.0 for p in pairs)
    cached = json.loads(Path(metrics["annotations_cache"]).read_text())
    assert len(cached) == 3 and all(c["preference"] == 2.0 for c in cached)  # the parsed order only
    calls = len(stub.calls)
    fail = experiment.model_copy(
        update={"evaluate": experiment.evaluate.model_copy(update={"judge_on_unparsed": "fail"})}
    )
    with pytest.raises(judges.AlpacaEvalError, match=r"no parseable verdict for 3 of 3 pairs") as error:
        evaluate_task(fail, "alpacaeval", outputs, tmp_path / "fail/alpacaeval.json")
    assert str(outputs) in str(error.value) and not (tmp_path / "fail/alpacaeval.json").exists()
    assert len(stub.calls) == calls + 6  # a new folder, a new cache: asked again


def test_reference_sets_are_named_checked_and_traced(tmp_path, data_mirror):
    instructions = [
        r["instruction"]
        for r in json.loads(
            (data_mirror / "alpaca_eval/results/text_davinci_003/model_outputs.json").read_text()
        )
    ]
    github, origin = refs.load_references("text_davinci_003", None, instructions)
    annotated, annotated_origin = refs.load_references(
        "text_davinci_003_gpt4_annotations", None, instructions
    )
    assert annotated_origin.endswith("results/gpt4/alpaca_eval_gpt4/annotations.json")
    by_instruction = {r["instruction"]: r["output"] for r in github}
    assert sum(by_instruction[r["instruction"]] != r["output"] for r in annotated) == 785
    one = refs.reference_provenance("text_davinci_003", origin, github)
    other = refs.reference_provenance("text_davinci_003_gpt4_annotations", annotated_origin, annotated)
    assert (one["n"], other["n"], other["column"]) == (805, 805, "output_1")
    assert one["sha256"] != other["sha256"]
    # the digest is the content's, not the file's: the same pairs in another order and file hash alike
    copy = tmp_path / "copy.json"
    copy.write_text(json.dumps(list(reversed(github))))
    rows, _ = refs.load_references(str(copy), None, instructions)
    assert refs.reference_provenance(str(copy), str(copy), rows)["sha256"] == one["sha256"]
    with pytest.raises(
        judges.AlpacaEvalError, match="not a reference set .*text_davinci_003_gpt4_annotations"
    ):
        refs.load_references("davinci", None, instructions)
    with pytest.raises(DataError, match="alpaca_eval_gpt4/annotations.json is absent from the mirror"):
        refs.load_references("text_davinci_003_gpt4_annotations", str(tmp_path), instructions)


def test_keyless_client_sends_no_key_even_with_one_in_the_environment(monkeypatch):
    import httpx2

    from ual.judges.clients import KeylessOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leave")
    seen = []

    def handler(request):
        seen.append(dict(request.headers))
        return httpx2.Response(200, json={
            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "M"}}
            ],
        })

    transport = httpx2.MockTransport(handler)  # records what would go on the wire
    client = KeylessOpenAI(base_url="http://127.0.0.1:9/v1", http_client=httpx2.Client(transport=transport))
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "M"
    assert seen and not any(k.lower() == "authorization" for k in seen[0])


def test_judge_orders_default_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    experiment = load_experiment(REPO / "experiments/tiny.yaml")

    def resolved(**update):
        cfg = experiment.evaluate.model_copy(update={"judge_orders": None, **update})
        return judges.resolve_annotator(cfg, tmp_path)[1]["judge_orders"]

    assert resolved() == "both"  # the local judge
    assert resolved(judge="alpaca_eval_gpt4", judge_model=None) == "random"  # stock, as its leaderboard
    assert resolved(judge="alpaca_eval_gpt4", judge_model="gpt-4") == "random"  # the stock model, named
    assert resolved(judge="alpaca_eval_gpt4", judge_model="gpt-4o") == "both"  # another judge model
    served = {"judge": "weighted_alpaca_eval_gpt4_turbo", "judge_model": "m", "judge_base_url": "http://x/v1"}
    assert resolved(**served) == "both"
    assert resolved(judge="alpaca_eval_gpt4", judge_model=None, judge_orders="both") == "both"
    keyless = dict(served, judge_base_url="http://127.0.0.1:1/v1", judge_api_key_env=None)
    info = judges.resolve_annotator(experiment.evaluate.model_copy(update=keyless), tmp_path)
    client = yaml.safe_load((tmp_path / "openai_client_config.yaml").read_text())
    assert info[1]["keyless"] and client == {
        "default": [{"base_url": "http://127.0.0.1:1/v1", "client_class": "ual.judges.clients.KeylessOpenAI"}]
    }
