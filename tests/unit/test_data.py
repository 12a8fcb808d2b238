"""ual.data: normalisers on mirror rows; malformed, empty, non-UTF-8 files; sources; sampling; scenarios."""

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
    assert str(info.value) == f"{path}: record 3: {message}"


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
    with pytest.raises(DataError, match=rf"^{path}: line 2: {message}"):
        load_records("gsm8k", "test", tmp_path)


def test_math_row_without_boxed_answer_is_an_error(tmp_path):
    path = tmp_path / "math" / "test.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"problem": "p", "solution": "no box here"}) + "\n")
    with pytest.raises(DataError, match=r"line 1: solution has no \\boxed"):
        load_records("math", "test", tmp_path)


def test_an_absent_mirror_file_names_the_path_its_upstream_url_and_fetch(tmp_path):
    with pytest.raises(DataError) as info:
        load_records("gsm8k", "train", tmp_path)
    message = str(info.value)
    path = tmp_path / "gsm8k/train.jsonl"
    assert message.startswith(f"gsm8k/train: {path} is absent from the mirror {tmp_path}")
    url = "raw.githubusercontent.com/openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c/"
    assert f"https://{url}grade_school_math/data/train.jsonl (4166206 bytes" in message
    assert "python -m ual.data fetch" in message and "UAL_DATA_MIRROR" in message


@pytest.mark.parametrize(
    ("dataset", "hub", "substitute"),
    [
        ("alpaca_gpt4", "vicgalle/alpaca-gpt4 @ f7e3ded725cb81e8e564e32feb12860f376f2b51",
         "alpaca_gpt4_demo"),
        ("alpaca", "tatsu-lab/alpaca @ dce01c9b08f87459cf36a430d809084718273017", "alpaca_gpt4_demo"),
        ("metamathqa", "meta-math/MetaMathQA @ aa4f34d3d2d3231299b5b03d9b3e5a20da45aa18", "gsm8k train"),
        ("math", "EleutherAI/hendrycks_math (config all) @ 21a5633873b6a120296cce3e2df9d5550074f4a3",
         "gsm8k train"),
    ],
)
def test_a_hub_dataset_that_cannot_be_loaded_names_its_pinned_revision_and_the_substitute(
    tmp_path, hub_offline, dataset, hub, substitute
):
    with pytest.raises(DataError) as info:
        load_records(dataset, "train", tmp_path)
    message = str(info.value)
    assert message.startswith(f"{dataset}/train: the mirror does not carry it, and the Hugging Face hub")
    assert f"dataset {hub} could not be loaded" in message
    assert f"the tiny profile uses {substitute}" in message


def test_an_unpinned_hub_source_is_refused_before_any_download(monkeypatch):
    from ual.data import Source, normalise

    monkeypatch.setitem(DATASETS, "unpinned", {"train": Source(normalise.alpaca, hub_id="someone/data")})
    with pytest.raises(DataError, match=r"^unpinned/train: the Hugging Face hub source someone/data has no "
                                        r"pinned revision \(ual/data/registry.py\)"):
        load_records("unpinned", "train")


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


def test_missing_alpaca_eval_references_name_the_file_and_its_url(tmp_path):
    with pytest.raises(DataError) as info:
        load_alpaca_eval_references("gpt4_1106_preview", tmp_path)
    message = str(info.value)
    assert f"{tmp_path / 'alpaca_eval/results/gpt4_1106_preview/model_outputs.json'} is absent" in message
    assert "githubusercontent.com/tatsu-lab/alpaca_eval/cd543a149df89434d8a54582c0151c0b945c3d20/" in message
    known = r"\['gpt4_1106_preview', 'text_davinci_003', 'text_davinci_003_gpt4_annotations'\]"
    with pytest.raises(DataError, match=rf"mirror carries only {known}"):
        load_alpaca_eval_references("my_model", tmp_path)


# --------------------------------------------------------------------------- bad files name the file


def _write(tmp_path: Path, relative: str, content: bytes) -> Path:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("relative", "content", "dataset", "split"),
    [
        ("gsm8k/train.jsonl", b"", "gsm8k", "train"),
        ("gsm8k/train.jsonl", b"\n\n", "gsm8k", "train"),
        ("instruct/alpaca_en_demo.json", b"[]", "alpaca_gpt4_demo", "train"),
    ],
    ids=["empty-jsonl", "blank-lines-only", "empty-json-list"],
)
def test_an_empty_data_file_is_refused_naming_it(tmp_path, relative, content, dataset, split):
    path = _write(tmp_path, relative, content)
    with pytest.raises(DataError, match=rf"^{path}: no records \(the file is empty: {len(content)} bytes\)$"):
        load_records(dataset, split, tmp_path)


def _data_config(mirror: Path, high_size: int | None, low_size: int | None = 1) -> DataConfig:
    return DataConfig(
        mirror=str(mirror),
        seed=0,
        scenarios=["high", "low", "mixed"],
        high=DatasetSlice(dataset="alpaca_gpt4_demo", split="train", size=high_size),
        low=DatasetSlice(dataset="gsm8k", split="train", size=low_size),
    )


def test_an_empty_file_is_refused_also_when_the_slice_takes_all_records(tmp_path):
    path = _write(tmp_path, "instruct/alpaca_en_demo.json", b"[]\n")
    with pytest.raises(DataError, match=rf"^{path}: no records"):
        build_scenario(_data_config(tmp_path, high_size=None), "high")


def test_a_slice_larger_than_its_file_names_the_slice_and_the_file(tmp_path):
    rows = [{"instruction": f"q{i}", "input": "", "output": "a"} for i in range(3)]
    path = _write(tmp_path, "instruct/alpaca_en_demo.json", json.dumps(rows).encode())
    with pytest.raises(DataError) as info:
        build_scenario(_data_config(tmp_path, high_size=4), "high")
    assert str(info.value) == (
        f"data.high: alpaca_gpt4_demo/train ({path}): subsample size 4 exceeds the 3 records available"
    )


def test_a_file_that_is_not_utf8_is_refused_naming_the_file_and_line(tmp_path):
    good = b'{"question": "q", "answer": "x\\n#### 3"}\n'
    path = _write(tmp_path, "gsm8k/test.jsonl", good + good + b'{"question": "caf\xe9", "answer": "x"}\n')
    with pytest.raises(DataError, match=rf"^{path}: line 3: not UTF-8 text \(invalid continuation byte"):
        load_records("gsm8k", "test", tmp_path)


def test_line_numbers_count_blank_lines(tmp_path):
    good = '{"question": "q", "answer": "x\\n#### 3"}'
    path = _write(tmp_path, "gsm8k/test.jsonl", f"{good}\n\n\n{good[:-1]}\n".encode())
    with pytest.raises(DataError, match=rf"^{path}: line 4: not valid JSON"):
        load_records("gsm8k", "test", tmp_path)
    path.write_text(f"\n{good}\n\n{{\"question\": \"q\"}}\n")
    with pytest.raises(DataError, match=rf"^{path}: line 4: missing field 'answer'$"):
        load_records("gsm8k", "test", tmp_path)
