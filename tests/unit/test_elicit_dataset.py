"""Elicitation of any dataset (``python -m ual.elicit --input``) without an elicitor call: the three formats
and
their column flags, file types, the errors for unknown columns and an unreachable hub id, the bill, the scored
rows (median for a missing sample, epsilon); score records of the earlier schema still read."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ual.data.normalise import record_id
from ual.elicit.cli import main
from ual.elicit.dataset import ColumnNames, DatasetFormatError, read_rows, scored_rows, to_records
from ual.elicit.estimate import CHARS_PER_TOKEN, CHAT_OVERHEAD_TOKENS
from ual.elicit.records import parse_record

REPO = Path(__file__).resolve().parents[2]
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Add 2 and 3."},
    {"role": "assistant", "content": "5."},
]


@pytest.mark.parametrize(
    ("row", "names", "expected"),
    [
        (
            {"instruction": "Add 2 and 3.", "input": "", "output": "5."},
            ColumnNames(),
            ("Add 2 and 3.", "", "5."),
        ),
        (
            {"q": "Add 2 and 3.", "ctx": "ints", "a": "5."},
            ColumnNames(instruction="q", input="ctx", output="a"),
            ("Add 2 and 3.", "ints", "5."),
        ),
        ({"prompt": "Add 2 and 3.", "completion": "5."}, ColumnNames(), ("Add 2 and 3.", "", "5.")),
        (
            {"prompt": CHAT[1:2], "completion": CHAT[2:]},  # one message: its content
            ColumnNames(),
            ("Add 2 and 3.", "", "5."),
        ),
        (
            {"prompt": CHAT[:2], "completion": CHAT[2:]},
            ColumnNames(),
            ("system: Be brief.\nuser: Add 2 and 3.", "", "5."),
        ),
        ({"messages": CHAT}, ColumnNames(), ("Add 2 and 3.", "system: Be brief.", "5.")),
        (
            {"conversation": CHAT},
            ColumnNames(messages="conversation"),
            ("Add 2 and 3.", "system: Be brief.", "5."),
        ),
    ],
)
def test_each_format_becomes_an_elicitation_record(row, names, expected):
    (record,) = to_records([row], names, "mine", "f.jsonl")
    assert (record["instruction"], record["input"], record["output"]) == expected
    assert record["dataset"] == "mine" and record["id"] == record_id("mine", *expected)


def test_unknown_columns_are_listed_with_the_flags():
    with pytest.raises(DatasetFormatError) as error:
        to_records([{"question": "q", "answer": "a"}], ColumnNames(), "d", "data.jsonl")
    message = str(error.value)
    assert "data.jsonl: columns ['answer', 'question'] match no known format" in message
    for flag in (
        "--messages-column",
        "--prompt-column",
        "--completion-column",
        "--instruction-column",
        "--output-column",
        "--input-column",
    ):
        assert flag in message


def test_a_bad_row_is_named():
    rows = [{"messages": CHAT}, {"messages": CHAT[:2]}]
    with pytest.raises(
        DatasetFormatError, match="f.jsonl: row 1 .messages format.: .*does not end with an assistant"
    ):
        to_records(rows, ColumnNames(), "d", "f.jsonl")


def test_jsonl_json_and_parquet_files_read_the_same(tmp_path):
    rows = [{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    for suffix in ("jsonl", "json", "parquet"):
        assert read_rows(str(tmp_path / f"d.{suffix}")) == rows
    (tmp_path / "d.csv").write_text("prompt,completion\n")
    with pytest.raises(DatasetFormatError, match="unknown file type '.csv'"):
        read_rows(str(tmp_path / "d.csv"))


def test_an_unreachable_hub_id_is_a_clear_error():
    code = "from ual.elicit.dataset import read_rows; read_rows('nobody-ual-test/no-such-dataset')"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0
    assert (
        "DatasetFormatError: 'nobody-ual-test/no-such-dataset' is not a file here and could not be loaded as "
        "a hub dataset (split 'train')"
    ) in done.stderr


def test_the_cli_names_the_columns_of_an_unknown_format(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(
        SystemExit, match=r"error: .*d.jsonl: columns \['answer', 'question'\] match no known"
    ):
        main(
            [
                "--input",
                str(data),
                "--out",
                str(tmp_path / "o.jsonl"),
                "--backend",
                "openai",
                "--model",
                "m",
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--cache-dir",
                str(tmp_path),
            ]
        )


def test_the_bill_of_a_file_makes_no_request(tmp_path, capsys):
    rows = [{"prompt": f"Question {i}", "completion": f"Answer {i}"} for i in range(5)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    main(
        [
            "--input",
            str(data),
            "--estimate",
            "--backend",
            "openai",
            "--model",
            "gpt-4-0613",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--cache-dir",
            str(tmp_path),
            "--usd-per-1m-input-tokens",
            "30",
        ]
    )
    out = capsys.readouterr().out
    from ual.elicit.core import build_elicit_prompt

    records = to_records(rows, ColumnNames(), "d", "d")
    tokens = sum(
        math.ceil(len(build_elicit_prompt(r, "v1")) / CHARS_PER_TOKEN) + CHAT_OVERHEAD_TOKENS for r in records
    )
    assert f"d: 5 samples, {tokens:,} prompt tokens (loaded)" in out and "requests: 5 to 10" in out


def test_scored_rows_keep_the_input_and_add_uncertainty_and_epsilon():
    rows = [
        {"prompt": "a", "completion": "b", "extra": 1},
        {"prompt": "c", "completion": "d", "extra": 2},
        {"prompt": "e", "completion": "f", "extra": 3},
    ]
    scores = [{"uncertainty": 0.2}, {"uncertainty": None}, {"uncertainty": 0.6}]
    out = scored_rows(rows, scores, "median", (0.0, 0.5))
    assert [r["extra"] for r in out] == [1, 2, 3]
    assert [r["uncertainty"] for r in out] == [0.2, 0.4, 0.6]
    assert [r["epsilon"] for r in out] == pytest.approx([0.1, 0.2, 0.3])
    assert scored_rows(rows, scores, "fail", None)[1] == rows[1] | {"uncertainty": None}


def test_a_record_of_the_earlier_schema_is_read_as_the_current_one():
    current = {
        "key": "k",
        "id": "i",
        "dataset": "d",
        "prompt_version": "v1",
        "elicitor": "hf:m",
        "source": "verbalized",
        "scorer": "verbalized/top20",
        "raw": "",
        "score": 4.0,
        "uncertainty": 1 / 3,
        "missing": False,
        "read_from": "logits",
        "probs": None,
        "answer_mass": None,
        "requests": 0,
        "seconds": 0.0,
        "cost_usd": 0.0,
        "error": None,
    }
    earlier = {k: v for k, v in current.items() if k not in ("source", "read_from")}
    earlier |= {"method": "verbalized", "source": "logits"}
    assert parse_record(json.dumps(earlier), "cache.jsonl", 1) == parse_record(json.dumps(current), "c", 1)
