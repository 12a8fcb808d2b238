"""ual.elicit pure core and cache: reply parsing, expected score, prompt, cache keys, kill-safe cache."""

from __future__ import annotations

import json

import pytest

from ual.elicit import (
    Reply,
    ScoreCache,
    build_elicit_prompt,
    cache_key,
    elicit_scores,
    expected_score,
    parse_uncertainty,
)

RECORD = {"id": "abc", "dataset": "d", "instruction": "Add 2 and 3.", "input": "", "output": "5"}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("7", 7),
        ("10", 10),
        ("1", 1),
        (" 4\n", 4),
        ("Score: 8", 8),
        ("8/10", 8),
        ("8 out of 10", 8),
        ("Uncertainty score (1-10): 6", 6),
        ("On a scale of 1 to 10, I'd say 2.", 2),
        ("5.", 5),
        ("**9**", 9),
        ("3.0", 3),
        # malformed: nothing, out of range, several different numbers, non-integers, words
        ("", None),
        ("I cannot rate this.", None),
        ("11", None),
        ("0", None),
        ("-3", None),
        ("3 or 4", None),
        ("between 2 and 5", None),
        ("7.5", None),
        ("seven", None),
        ("1-10", None),
        ("v2", None),
    ],
)
def test_parse_uncertainty_table(reply, expected):
    assert parse_uncertainty(reply) == expected


def test_expected_score_renormalises_over_answers_only():
    assert expected_score({"1": 0.5, "10": 0.5}) == 5.5
    assert expected_score({"3": 0.2, "4": 0.2, "x": 0.6}) == 3.5
    assert expected_score({"x": 1.0}) is None
    assert expected_score({"2": 0.0}) is None


def test_prompt_contains_the_sample_and_ends_with_the_score_cue():
    prompt = build_elicit_prompt(RECORD, "v1")
    assert "### Instruction:\nAdd 2 and 3.\n\n### Input:\n(none)\n\n### Response:\n5\n" in prompt
    assert prompt.endswith("Uncertainty score (1-10):")
    braces = build_elicit_prompt(RECORD | {"output": "def f(): return {'a': 1}"}, "v1")
    assert "{'a': 1}" in braces  # user text with braces is not a template field


def test_cache_key_depends_on_sample_prompt_version_elicitor_and_scorer():
    base = cache_key("abc", "v1", "hf:m", "verbalized/top20")
    assert base == cache_key("abc", "v1", "hf:m", "verbalized/top20")
    variants = {
        cache_key("abd", "v1", "hf:m", "verbalized/top20"),
        cache_key("abc", "v2", "hf:m", "verbalized/top20"),
        cache_key("abc", "v1", "openai:m", "verbalized/top20"),
        cache_key("abc", "v1", "hf:m", "verbalized/top5"),
    }
    assert len(variants | {base}) == 5


def _row(key: str, score: float | None = 5.0, error: str | None = None) -> dict:
    return {
        "key": key,
        "id": key,
        "dataset": "d",
        "prompt_version": "v1",
        "elicitor": "stub:len",
        "source": "verbalized",
        "scorer": "stub",
        "raw": "",
        "score": score,
        "uncertainty": None if score is None else (score - 1) / 9,
        "missing": score is None,
        "read_from": "text",
        "probs": None,
        "answer_mass": None,
        "requests": 1,
        "seconds": 0.0,
        "cost_usd": 0.0,
        "error": error,
    }


def test_cache_drops_and_repairs_a_truncated_last_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text(json.dumps(_row("a")) + "\n" + json.dumps(_row("b")) + "\n" + '{"key": "c", "sco')
    cache = ScoreCache(path)
    assert set(cache.records) == {"a", "b"}
    assert path.read_text().endswith("}\n")  # repaired: the half line is gone
    cache.append(_row("c"))
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["a", "b", "c"]
    assert set(ScoreCache(path).records) == {"a", "b", "c"}


def test_cache_corruption_before_the_last_line_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text(json.dumps(_row("a")) + "\nnot json\n" + json.dumps(_row("b")) + "\n")
    with pytest.raises(ValueError, match=r"cache.jsonl: line 2: not valid JSON"):
        ScoreCache(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"key": "k"}, r"line 2: not a valid score record: 'id': Field required"),
        ({"score": 42}, r"line 2: .*verbalized score 42.0 outside \[1, 10\]"),
        ({"score": True}, r"line 2: .*'score': Input should be a valid number"),
        ({"score": 5.0, "uncertainty": 0.9}, r"line 2: .*uncertainty 0.9 is not \(score - 1\) / 9"),
        ({"missing": True}, r"line 2: .*missing is True but score is 5.0"),
    ],
)
def test_invalid_cache_records_are_refused_with_file_and_line(tmp_path, edit, message):
    path = tmp_path / "cache.jsonl"
    bad = edit if set(edit) == {"key"} else _row("b") | edit
    path.write_text(json.dumps(_row("a")) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match="cache.jsonl: " + message):
        ScoreCache(path)


def test_failed_requests_in_the_cache_are_retried_but_unparseable_replies_are_not(tmp_path):
    cache = ScoreCache(tmp_path / "c.jsonl")
    cache.append(_row("failed", None, error="InternalServerError"))
    cache.append(_row("garbage", None))
    assert cache.get("failed") is None and cache.get("garbage")["missing"] is True


class StubElicitor:
    """Test stub: scores from the response length, counts the prompts it is sent."""

    name, source, scorer, batch_size, concurrency = "stub:len", "verbalized", "stub", 2, 2

    def __init__(self):
        self.prompts: list[str] = []

    def build_input(self, record: dict, prompt_version: str) -> str:
        return build_elicit_prompt(record, prompt_version)

    def score(self, prompts: list[str]) -> list[Reply]:
        self.prompts += prompts
        return [
            Reply(raw="r", score=None if "nope" in p else float(len(p) % 10 + 1), read_from="text", cost_usd=0.5)
            for p in prompts
        ]


def test_elicit_scores_keeps_order_records_missing_and_skips_cached(tmp_path):
    records = [RECORD | {"id": f"id{i}", "output": "nope" if i == 3 else "x" * i} for i in range(5)]
    stub, cache = StubElicitor(), ScoreCache(tmp_path / "c.jsonl")
    rows, stats = elicit_scores(records, stub, cache, "v1", progress=False)
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    assert stats.requested == 5 and stats.missing == 1 and stats.cost_usd == 2.5
    assert rows[3]["missing"] and rows[3]["score"] is None and rows[3]["uncertainty"] is None
    assert all(r["uncertainty"] == (r["score"] - 1) / 9 for r in rows if not r["missing"])
    assert set(rows[0]) == set(_row("x"))
    again, stub2 = None, StubElicitor()
    again, stats2 = elicit_scores(records, stub2, ScoreCache(tmp_path / "c.jsonl"), "v1", progress=False)
    assert stub2.prompts == [] and stats2.cached == 5 and again == rows  # a cached rerun sends nothing


DOCTESTED = ["ual.elicit.core", "ual.elicit.openai", "ual.elicit.entropy", "ual.data.normalise",
             "ual.epsilon"]


@pytest.mark.parametrize("module", DOCTESTED)
def test_doctests_of_the_pure_functions_pass(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


class CrashingStub(StubElicitor):
    """Test stub: the second call raises, as a crashed backend would."""

    concurrency = 1

    def score(self, prompts: list[str]) -> list[Reply]:
        if self.prompts:
            raise RuntimeError("backend crashed")
        return super().score(prompts)


def test_a_crash_keeps_finished_records_and_the_rerun_scores_only_the_rest(tmp_path):
    records = [RECORD | {"id": f"id{i}", "output": "x" * i} for i in range(6)]
    with pytest.raises(RuntimeError, match="backend crashed"):
        elicit_scores(records, CrashingStub(), ScoreCache(tmp_path / "c.jsonl"), "v1", progress=False)
    assert len(ScoreCache(tmp_path / "c.jsonl").records) == 2
    stub = StubElicitor()
    rows, stats = elicit_scores(records, stub, ScoreCache(tmp_path / "c.jsonl"), "v1", progress=False)
    assert stats.cached == 2 and len(stub.prompts) == 4 and len(rows) == 6
