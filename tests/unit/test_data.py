"""ual.data: each normaliser on real mirror rows, malformed rows, sources, subsampling, scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ual.config import DataConfig, DatasetSlice
from ual.data import (
    DATASETS,
    RECORD_KEYS,
    DataError,
    build_scenario,
    extract_boxed,
    load_alpaca_eval_references,
    load_records,
    record_id,
    rewrite_gsm8k_solution,
    subsample,
)

# (dataset, split, mirror file, expected number of records after exact-duplicate removal)
MIRRORED = [
    ("alpaca_gpt4_demo", "train", "instruct/alpaca_en_demo.json", 985),
    ("gsm8k", "train", "gsm8k/train.jsonl", 7473),
    ("gsm8k", "test", "gsm8k/test.jsonl", 1319),
    ("math", "test", "math/test.jsonl", 5000),
    ("math", "math500", "math/math500.jsonl", 500),
    ("alpaca_eval", "eval", "alpaca_eval/results/text_davinci_003/model_outputs.json", 805),
]


def _need(mirror: Path, relative: str) -> Path:
    path = mirror / relative
    if not path.is_file():
        pytest.skip(f"{relative} is absent from the data mirror {mirror}")
    return path


@pytest.fixture
def hub_offline(monkeypatch):
    """Make hub look-ups fail at once (as on the air-gapped CI) instead of after ~25 s of retries."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize(("dataset", "split", "relative", "count"), MIRRORED)
def test_each_mirrored_dataset_normalises_to_the_record_schema(data_mirror, dataset, split, relative, count):
    _need(data_mirror, relative)
    records = load_records(dataset, split, data_mirror)
    assert len(records) == count
    assert len({r["id"] for r in records}) == count
    for record in records:
        assert tuple(record) == RECORD_KEYS
        assert record["dataset"] == dataset
        assert record["instruction"].strip()
        assert all(isinstance(record[k], str) for k in ("id", "instruction", "input", "output"))
    assert records[0]["id"] == record_id(
        dataset, records[0]["instruction"], records[0]["input"], records[0]["output"]
    )


def test_mirror_is_read_from_env_when_no_argument(data_mirror, monkeypatch):
    _need(data_mirror, "gsm8k/test.jsonl")
    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    assert load_records("gsm8k", "test") == load_records("gsm8k", "test", data_mirror)


def test_gsm8k_train_is_rewritten_metamath_style(data_mirror):
    _need(data_mirror, "gsm8k/train.jsonl")
    first = load_records("gsm8k", "train", data_mirror)[0]
    assert first["instruction"].startswith("Natalia sold clips to 48 of her friends in April")
    assert first["output"] == (
        "Natalia sold 48/2 = 24 clips in May.\n"
        "Natalia sold 48+24 = 72 clips altogether in April and May.\n"
        "The answer is: 72"
    )
    assert first["answer"] == "72"
    for record in load_records("gsm8k", "train", data_mirror):
        assert "<<" not in record["output"] and "####" not in record["output"]
        assert record["output"].endswith(f"\nThe answer is: {record['answer']}")
        assert "," not in record["answer"]
        float(record["answer"])  # every GSM8K answer is a number


def test_gsm8k_test_keeps_the_solution_rewritten_the_same_way(data_mirror):
    _need(data_mirror, "gsm8k/test.jsonl")
    records = load_records("gsm8k", "test", data_mirror)
    assert records[0]["answer"] == "18"
    assert records[0]["output"].endswith("The answer is: 18")


def test_math_test_answer_is_the_last_boxed_and_agrees_with_math500(data_mirror):
    _need(data_mirror, "math/test.jsonl")
    _need(data_mirror, "math/math500.jsonl")
    test = {r["instruction"]: r["answer"] for r in load_records("math", "test", data_mirror)}
    math500 = load_records("math", "math500", data_mirror)
    assert math500[0]["answer"] == r"\left( 3, \frac{\pi}{2} \right)"
    assert all(test[r["instruction"]] == r["answer"] for r in math500)  # 500 / 500 agree


def test_alpaca_eval_has_805_instructions_in_reference_order(data_mirror):
    relative = "alpaca_eval/results/gpt4_1106_preview/model_outputs.json"
    _need(data_mirror, relative)
    records = load_records("alpaca_eval", "eval", data_mirror)
    for generator in ("text_davinci_003", "gpt4_1106_preview"):
        references = load_alpaca_eval_references(generator, data_mirror)
        assert [r["instruction"] for r in references] == [r["instruction"] for r in records]
        assert set(references[0]) == {"instruction", "output", "generator", "dataset"}
        assert {r["generator"] for r in references} == {generator}
    assert records[0]["output"] == "" and records[0]["answer"] is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"instruction": "x", "input": ""}, "missing field 'output'"),
        ({"instruction": "x", "input": "", "output": "  "}, "field 'output' is empty"),
        ({"instruction": "x", "input": "", "output": 3}, "field 'output' must be a string, got int"),
        (["not", "a", "dict"], "expected a JSON object, got list"),
    ],
)
def test_malformed_alpaca_row_names_file_and_row(tmp_path, row, message):
    good = {"instruction": "a", "input": "", "output": "b"}
    path = tmp_path / "instruct" / "alpaca_en_demo.json"
    path.parent.mkdir()
    path.write_text(json.dumps([good, good | {"output": "c"}, row]))
    with pytest.raises(DataError) as info:
        load_records("alpaca_gpt4_demo", "train", tmp_path)
    assert str(info.value) == f"{path}: row 3: {message}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "q"}', "missing field 'answer'"),
        ('{"question": "q", "answer": "no final line"}', "solution has no final '#### <answer>' line"),
        ('{"question": 7, "answer": "x\\n#### 3"}', "field 'question' must be a string, got int"),
        ('{"question": "q", "answer": "x\\n####', "not valid JSON"),
    ],
)
def test_malformed_gsm8k_row_names_file_and_row(tmp_path, line, message):
    path = tmp_path / "gsm8k" / "test.jsonl"
    path.parent.mkdir()
    path.write_text('{"question": "q", "answer": "x\\n#### 3"}\n' + line + "\n")
    with pytest.raises(DataError, match=rf"^{path}: row 2: {message}"):
        load_records("gsm8k", "test", tmp_path)


def test_math_row_without_boxed_answer_is_an_error(tmp_path):
    path = tmp_path / "math" / "test.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"problem": "p", "solution": "no box here"}) + "\n")
    with pytest.raises(DataError, match=r"row 1: solution has no \\boxed"):
        load_records("math", "test", tmp_path)


def test_neither_mirror_nor_hub_gives_one_error_naming_both(tmp_path, hub_offline):
    with pytest.raises(DataError) as info:
        load_records("gsm8k", "train", tmp_path)
    message = str(info.value)
    assert f"the mirror file {tmp_path / 'gsm8k/train.jsonl'} (absent)" in message
    assert "Hugging Face hub dataset openai/gsm8k (config main)" in message


@pytest.mark.parametrize(
    ("dataset", "hub_id", "substitute"),
    [
        ("alpaca_gpt4", "vicgalle/alpaca-gpt4", "alpaca_gpt4_demo"),
        ("alpaca", "tatsu-lab/alpaca", "alpaca_gpt4_demo"),
        ("metamathqa", "meta-math/MetaMathQA", "gsm8k train"),
        ("math", "EleutherAI/hendrycks_math", "gsm8k train"),
    ],
)
def test_dataset_absent_from_mirror_says_so_and_names_the_substitute(
    tmp_path, hub_offline, dataset, hub_id, substitute
):
    with pytest.raises(DataError) as info:
        load_records(dataset, "train", tmp_path)
    message = str(info.value)
    assert f"the mirror {tmp_path} (which does not carry {dataset}/train" in message
    assert hub_id in message
    assert f"the tiny profile uses {substitute}" in message


def test_unknown_dataset_and_split_are_named():
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_records("nope", "train")
    with pytest.raises(DataError, match="dataset 'gsm8k' has no split 'dev'"):
        load_records("gsm8k", "dev")


def test_registry_covers_the_shared_interface():
    assert set(DATASETS) == {
        "alpaca_gpt4",
        "alpaca",
        "alpaca_gpt4_demo",
        "metamathqa",
        "gsm8k",
        "math",
        "alpaca_eval",
    }
    assert set(DATASETS["gsm8k"]) >= {"train", "test"} and set(DATASETS["math"]) >= {"test", "math500"}


def test_rewrite_and_boxed_edge_cases():
    assert rewrite_gsm8k_solution("a <<1+1=2>>2\n#### -1,000.5") == ("a 2\nThe answer is: -1000.5", "-1000.5")
    assert extract_boxed(r"\boxed{a{b}c} then \fbox{x}") == "x"
    assert extract_boxed(r"\boxed{unbalanced") is None


def _records(n: int, dataset: str = "d") -> list[dict]:
    return [{"id": record_id(dataset, f"q{i}", "", "a"), "dataset": dataset} for i in range(n)]


def test_subsample_is_deterministic_ordered_nested_and_seed_dependent():
    records = _records(200)
    small, large = subsample(records, 20, seed=0), subsample(records, 40, seed=0)
    assert small == subsample(records, 20, seed=0)
    assert {r["id"] for r in small} <= {r["id"] for r in large}
    assert small == [r for r in records if r in small]  # original order kept
    assert small != subsample(records, 20, seed=1)
    assert subsample(list(reversed(records)), 20, seed=0) == list(reversed(small))  # order-independent choice
    assert subsample(records, None, seed=0) == records
    with pytest.raises(DataError, match="subsample size 201 exceeds the 200 records"):
        subsample(records, 201, seed=0)


def test_build_scenario_mixed_is_high_then_low(data_mirror):
    _need(data_mirror, "instruct/alpaca_en_demo.json")
    _need(data_mirror, "gsm8k/train.jsonl")
    cfg = DataConfig(
        mirror=str(data_mirror),
        seed=0,
        scenarios=["high", "low", "mixed"],
        high=DatasetSlice(dataset="alpaca_gpt4_demo", split="train", size=8),
        low=DatasetSlice(dataset="gsm8k", split="train", size=5),
    )
    high, low, mixed = (build_scenario(cfg, s) for s in ("high", "low", "mixed"))
    assert len(high) == 8 and len(low) == 5
    assert mixed == high + low
    assert build_scenario(cfg, "mixed") == mixed
    with pytest.raises(DataError, match="unknown scenario 'both'"):
        build_scenario(cfg, "both")


def test_missing_alpaca_eval_references_name_mirror_and_hub(tmp_path, hub_offline):
    with pytest.raises(DataError) as info:
        load_alpaca_eval_references("gpt4_1106_preview", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "alpaca_eval/results/gpt4_1106_preview/model_outputs.json") in message
    assert "tatsu-lab/alpaca_eval (alpaca_eval_gpt4_baseline.json)" in message
    with pytest.raises(DataError, match="the hub dataset tatsu-lab/alpaca_eval carries only"):
        load_alpaca_eval_references("my_model", tmp_path)
