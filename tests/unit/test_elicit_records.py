"""The scores file's one reader and writer (ual.elicit.records): bad records refused with file and line."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ual.elicit import RecordError, Reply, read_scores, write_scores
from ual.elicit.run import score_record
from ual.report import collect

ELICITOR = SimpleNamespace(name="hf:m", source="verbalized", scorer="verbalized/top20")


def rows(scores: list[float | None]) -> list[dict]:
    return [
        score_record(f"k{i}", {"id": f"s{i}", "dataset": "d"}, "v1", ELICITOR, Reply("", s, "logits"), 0.0)
        for i, s in enumerate(scores)
    ]


def write_lines(path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_round_trip_keeps_order_and_values(tmp_path):
    path = tmp_path / "scores.jsonl"
    write_scores(path, rows([1.0, 5.5, None, 10.0]))
    back = read_scores(path, {"elicitor": "hf:m", "source": "verbalized"})
    assert [r["score"] for r in back] == [1.0, 5.5, None, 10.0]
    assert [r["uncertainty"] for r in back] == [0.0, 0.5, None, 1.0]
    assert back[2]["missing"] and collect.read_scores(path)["score"].isna().sum() == 1


def test_duplicate_id_names_both_lines(tmp_path):
    path = tmp_path / "scores.jsonl"
    first, second = rows([2.0, 3.0])
    write_lines(path, [first, second, second | {"key": "other", "score": 10.0, "uncertainty": 1.0}])
    with pytest.raises(RecordError, match=r"scores.jsonl: line 3: duplicate id 's1' \(first on line 2\)"):
        read_scores(path)
    with pytest.raises(RecordError, match="duplicate id"):  # the report reads through the same reader
        collect.read_scores(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"uncertainty": True}, r"'uncertainty': Input should be a valid number"),
        ({"score": "7"}, r"'score': Input should be a valid number"),
        ({"score": 11.0, "uncertainty": 10 / 9}, r"'uncertainty': Input should be less than or equal to 1"),
        ({"score": 0.0, "uncertainty": 0.0}, r"verbalized score 0.0 outside \[1, 10\]"),
        ({"score": None}, r"missing is False but score is None"),
        ({"probs": {"1": 1.7}}, r"probs\['1'\] = 1.7 is not a probability"),
        ({"extra": 1}, r"'extra': Extra inputs are not permitted"),
    ],
)
def test_invalid_values_are_refused_with_file_and_line(tmp_path, edit, message):
    path = tmp_path / "scores.jsonl"
    good, bad = rows([2.0, 3.0])
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(bad | edit) + "\n")  # line 3, after a blank line
    with pytest.raises(RecordError, match=r"scores.jsonl: line 3: not a valid score record: .*" + message):
        read_scores(path)


def test_provenance_mismatch_and_non_utf8_are_refused(tmp_path):
    path = tmp_path / "scores.jsonl"
    write_scores(path, rows([4.0]))
    message = r"line 1: scorer is 'verbalized/top20' but the experiment's is 'x'"
    with pytest.raises(RecordError, match=message):
        read_scores(path, {"scorer": "x"})
    path.write_bytes(b"\xff\xfe not text\n")
    with pytest.raises(RecordError, match=r"scores.jsonl: not UTF-8 text"):
        read_scores(path)


def test_the_writer_refuses_what_the_reader_would_refuse(tmp_path):
    (bad,) = rows([4.0])
    with pytest.raises(RecordError, match=r"record 1 is invalid"):
        write_scores(tmp_path / "scores.jsonl", [bad | {"uncertainty": 0.9}])
    assert not (tmp_path / "scores.jsonl").exists()


PER_TOKEN = SimpleNamespace(name="hf:m", source="entropy", scorer="entropy/per-token/self")


def test_token_entropy_is_written_only_by_a_per_token_scorer(tmp_path):
    reply = Reply("", 1.5, "entropy", token_scores=[1.0, 2.0])
    record = score_record("k", {"id": "s", "dataset": "d"}, "v1", PER_TOKEN, reply, 0.0)
    path = tmp_path / "scores.jsonl"
    write_lines(path, [record | {"uncertainty": 0.5}])
    assert read_scores(path)[0]["token_entropy"] == [1.0, 2.0]
    plain = rows([2.0])[0]
    write_scores(path, [plain])
    assert "token_entropy" not in path.read_text()  # files of per-sample scorers are unchanged
    for bad, message in (
        (plain | {"token_entropy": [1.0]}, "token_entropy is present iff a per-token scorer"),
        (record | {"uncertainty": 0.5, "token_entropy": [-1.0]}, "token_entropy holds a negative entropy"),
        (record | {"uncertainty": 0.5, "token_entropy": None}, "token_entropy is present iff"),
    ):
        write_lines(path, [bad])
        with pytest.raises(RecordError, match=f"line 1: .*{message}"):
            read_scores(path)
