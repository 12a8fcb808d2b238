"""The openai backend's score from hand-built top_logprobs, parsed by the real openai client types.

No HTTP: ``OpenAIElicitor._request`` returns ``ChatCompletion`` objects built from OpenAI-shaped dicts, so
these cases are exact: digit-split "10" (from the greedy reply and from a continuation request), a first
token that is a word, no answer token at all (missing), no logprobs (parsed, warned once, counted).
"""

from __future__ import annotations

import logging
import math

import pytest
from openai.types.chat import ChatCompletion

from ual.config import ElicitConfig
from ual.elicit import ScoreCache, elicit_scores, scorer_name
from ual.elicit.openai import OpenAIElicitor, retry_after_seconds, score_from_logprobs

Position = tuple[str, dict[str, float]]  # (sampled token, alternatives -> probability)
RECORDS = [
    {"id": f"s{i}", "dataset": "d", "instruction": "Q", "input": "", "output": str(i)} for i in (0, 1, 2)
]


def chat_completion(content: str, positions: list[Position] | None) -> ChatCompletion:
    logprobs = None
    if positions is not None:
        logprobs = {
            "content": [
                {
                    "token": token,
                    "logprob": math.log(alternatives.get(token, 1e-9)),
                    "bytes": None,
                    "top_logprobs": [
                        {"token": t, "logprob": math.log(p), "bytes": None} for t, p in alternatives.items()
                    ],
                }
                for token, alternatives in positions
            ]
        }
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "finish_reason": "stop", "logprobs": logprobs, "message": message}
    return ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [choice],
            "usage": {"prompt_tokens": 100, "completion_tokens": 2, "total_tokens": 102},
        }
    )


class Scripted(OpenAIElicitor):
    """The real OpenAIElicitor whose HTTP call returns scripted completions (first reply, continuation)."""

    def __init__(self, first: ChatCompletion, after_one: ChatCompletion | None = None, **overrides):
        values = dict(backend="openai", model="m", prompt_version="v1", on_missing="fail",
                      base_url="http://127.0.0.1:9/v1", usd_per_1m_input_tokens=1.0)
        super().__init__(ElicitConfig(**(values | overrides)))
        self.first, self.after_one, self.sent = first, after_one, []

    def _request(self, messages, max_tokens, **extra):
        self.sent.append((messages, max_tokens, extra))
        return self.first if len(messages) == 1 else self.after_one


def test_digit_split_ten_read_from_the_greedy_reply():
    # reply "10" as "1" + "0": P(10) = 0.45 * 0.8, P(1) = 0.45 * 0.2, P(9) = 0.55
    first = chat_completion("10", [("1", {"1": 0.45, "9": 0.55}), ("0", {"0": 0.8, ".": 0.2})])
    elicitor = Scripted(first)
    (reply,) = elicitor.score(["p"])
    assert reply.score == pytest.approx(0.09 * 1 + 0.55 * 9 + 0.36 * 10)
    assert reply.probs == pytest.approx({"1": 0.09, "9": 0.55, "10": 0.36})
    assert reply.read_from == "logprobs" and reply.requests == 1 and len(elicitor.sent) == 1


def test_digit_split_ten_asks_a_continuation_when_the_reply_did_not_start_with_one():
    first = chat_completion("9", [("9", {"9": 0.55, "1": 0.45})])
    after_one = chat_completion("0", [("0", {"0": 1.0})])
    elicitor = Scripted(first, after_one)
    (reply,) = elicitor.score(["p"])
    assert reply.score == pytest.approx(9.45)  # not 5.4 (P("1") counted as a score of 1)
    assert reply.requests == 2 and reply.cost_usd == pytest.approx(2 * 100 / 1e6)
    messages, max_tokens, extra = elicitor.sent[1]
    assert messages[-1] == {"role": "assistant", "content": "1"} and max_tokens == 1
    assert extra == {"continue_final_message": True, "add_generation_prompt": False}


def test_one_token_ten_and_the_openai_api_need_no_continuation(monkeypatch):
    monkeypatch.setenv("UAL_TEST_KEY", "sk-test")
    first = chat_completion("9", [("9", {"9": 0.5, "1": 0.25, "10": 0.25})])
    elicitor = Scripted(first)
    assert elicitor.score(["p"])[0].score == pytest.approx((4.5 + 0.25 + 2.5) / 1.0)
    api = Scripted(chat_completion("1", [("1", {"1": 1.0})]), base_url=None, api_key_env="UAL_TEST_KEY")
    assert api.continue_ten is False  # base_url null: OpenAI's one-token "10", no prefill


def test_a_first_token_that_is_a_word_is_scored_from_its_distribution():
    first = chat_completion("The score is 3", [("The", {"The": 0.6, "3": 0.2, "4": 0.2})])
    (reply,) = Scripted(first).score(["p"])
    assert reply.score == pytest.approx(3.5) and reply.answer_mass == pytest.approx(0.4)


def test_no_answer_token_is_missing_not_parsed(tmp_path):
    first = chat_completion("The answer is 7", [("The", {"The": 0.9, "You": 0.1})])
    elicitor = Scripted(first)
    rows, stats = elicit_scores(RECORDS[:1], elicitor, ScoreCache(tmp_path / "c.jsonl"), "v1", progress=False)
    assert rows[0]["missing"] and rows[0]["read_from"] == "logprobs" and rows[0]["answer_mass"] == 0.0
    assert stats.zero_mass == 1 and stats.missing == 1 and rows[0]["raw"] == "The answer is 7"


def test_no_logprobs_at_all_is_parsed_warned_once_and_counted(tmp_path, caplog):
    elicitor = Scripted(chat_completion("Score: 4", None))
    with caplog.at_level(logging.WARNING, logger="ual.elicit.openai"):
        rows, stats = elicit_scores(RECORDS, elicitor, ScoreCache(tmp_path / "c.jsonl"), "v1", progress=False)
    assert [r["score"] for r in rows] == [4.0] * 3 and {r["read_from"] for r in rows} == {"text"}
    assert stats.no_logprobs == 3 and stats.missing == 0
    assert sum("returned no logprobs" in m for m in caplog.messages) == 1


def test_score_from_logprobs_pure_cases():
    assert score_from_logprobs([("Ġ2", 0.5), ("▁4", 0.5)], None)[0] == 3.0  # space markers
    assert score_from_logprobs([("1", 0.5), ("2", 0.5)], [("0", 0.0), ("x", 1.0)])[0] == 1.5
    assert score_from_logprobs([], None) == (None, {})


def test_scorer_name_and_keyless_config():
    base = dict(backend="openai", model="m", prompt_version="v1", on_missing="fail")
    keyless = ElicitConfig(**base, base_url="http://h/v1")
    assert scorer_name(keyless) == "verbalized/top20/ten-continued"
    assert set(Scripted(chat_completion("1", None))._headers) == {"Authorization"}  # omitted, not a dummy key
    with pytest.raises(ValueError, match="base_url null.* needs api_key_env"):
        ElicitConfig(**base)
    with pytest.raises(ValueError, match="method 'entropy' needs the hf backend"):
        ElicitConfig(**base, base_url="http://h/v1", method="entropy")
    hf = ElicitConfig(**(base | {"backend": "hf"}), method="entropy")
    assert scorer_name(hf) == "entropy"


def test_retry_after_headers_are_parsed():
    class Exc:
        def __init__(self, headers):
            self.response = type("R", (), {"headers": headers})()

    assert retry_after_seconds(Exc({"retry-after": "3"})) == 3.0
    assert retry_after_seconds(Exc({"retry-after-ms": "1500"})) == 1.5
    assert 0 < retry_after_seconds(Exc({"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}))
    assert retry_after_seconds(Exc({})) == 0.0 and retry_after_seconds(ValueError()) == 0.0
