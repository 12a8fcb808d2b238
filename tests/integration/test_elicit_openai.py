"""Fault injection: the openai elicitor against a fake OpenAI-compatible server on 127.0.0.1.

The real server (llama.cpp) is tested in test_elicit_server.py; this fake only injects what a real one
does not do on demand: 429 (with and without Retry-After), 500s past the retry budget (missing, run fails
with the count, not cached, no stale sidecar), hangs (timeouts), garbage and non-JSON replies, two runs
sharing one cache at the same time (no paid request and no line twice), and that the API key is in no
written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ual.config import ElicitConfig
from ual.experiment import load_experiment
from ual.data import build_scenario
from ual.elicit import ScoreCache, build_elicit_prompt, cache_path, elicit_scores, main
from ual.elicit.openai import OpenAIElicitor

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
KEY_ENV = "UAL_TEST_ELICIT_KEY"
SECRET = "sk-test-DO-NOT-LEAK-7f3a91c2"


def fake_score(prompt: str) -> int:
    """The fake server's deterministic integer for a prompt (1..10)."""
    return int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 10 + 1


def completion(content: str) -> dict:
    """A chat completion without logprobs (hand-built logprobs are tested without HTTP, in
    tests/unit/test_elicit_logprobs.py)."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-gpt",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 2, "total_tokens": 1002},
    }


# (prompt, n-th call for it) -> (status, body) or (status, body, headers); the request body is in .bodies
Behaviour = Callable[[str, int], tuple]


class FakeOpenAI:
    """Test stub of an OpenAI-compatible /v1/chat/completions endpoint, loopback only."""

    def __init__(self, behaviour: Behaviour, delay_s: float = 0.0):
        self.behaviour, self.delay_s = behaviour, delay_s
        self.calls: list[str] = []
        self.bodies: list[dict] = []
        self.auth: set[str] = set()
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                with fake.lock:
                    fake.calls.append(prompt)
                    fake.bodies.append(body)
                    fake.auth.add(self.headers.get("Authorization", ""))
                    nth = fake.calls.count(prompt)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                time.sleep(fake.delay_s)
                status, payload, *headers = fake.behaviour(prompt, nth)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                with fake.lock:
                    fake.in_flight -= 1
                self.send_response(status)
                for name, value in (headers[0] if headers else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gone (killed)
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server_factory():
    servers: list[FakeOpenAI] = []

    def make(behaviour: Behaviour, delay_s: float = 0.0) -> FakeOpenAI:
        servers.append(FakeOpenAI(behaviour, delay_s))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def good(prompt: str, nth: int) -> tuple[int, object]:
    return 200, completion(str(fake_score(prompt)))


def cfg(server: FakeOpenAI, **overrides) -> ElicitConfig:
    values = dict(
        backend="openai",
        model="fake-gpt",
        prompt_version="v1",
        on_missing="fail",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        concurrency=4,
        max_retries=2,
        retry_wait_s=0.01,
        timeout_s=10.0,
        usd_per_1m_input_tokens=10.0,
        usd_per_1m_output_tokens=30.0,
    )
    return ElicitConfig(**(values | overrides))


def records(n: int) -> list[dict]:
    return [
        {"id": f"s{i}", "dataset": "d", "instruction": f"Question {i}?", "input": "", "output": f"Answer {i}"}
        for i in range(n)
    ]


def assert_key_never_written(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"API key written to {path}"


def test_rate_limit_then_success_is_retried(server_factory, tmp_path):
    server = server_factory(
        lambda p, nth: (429, {"error": {"message": "slow down"}}) if nth == 1 else good(p, nth)
    )
    _, stats = elicit_scores(
        records(5),
        OpenAIElicitor(cfg(server), "openai:fake-gpt"),
        ScoreCache(tmp_path / "c.jsonl"),
        "v1",
        progress=False,
    )
    assert stats.missing == 0 and len(server.calls) == 10
    assert all(count == 2 for count in Counter(server.calls).values())


def test_garbage_replies_are_missing_and_cached(server_factory, tmp_path):
    garbage = ["I cannot rate this.", "", "42", "3 or 4"]
    server = server_factory(lambda p, nth: (200, completion(garbage[int(p.split("Question ")[1][0]) % 4])))
    cache = ScoreCache(tmp_path / "c.jsonl")
    rows, stats = elicit_scores(
        records(4), OpenAIElicitor(cfg(server), "openai:fake-gpt"), cache, "v1", progress=False
    )
    assert stats.missing == 4 and all(r["missing"] and r["error"] is None for r in rows)
    assert sorted(r["raw"] for r in rows) == sorted(garbage)
    elicit_scores(
        records(4),
        OpenAIElicitor(cfg(server), "openai:fake-gpt"),
        ScoreCache(tmp_path / "c.jsonl"),
        "v1",
        progress=False,
    )
    assert len(server.calls) == 4  # greedy garbage is not asked again


def test_non_json_body_is_missing_not_a_crash(server_factory, tmp_path):
    server = server_factory(lambda p, nth: (200, "<html>proxy error</html>"))
    rows, stats = elicit_scores(
        records(2),
        OpenAIElicitor(cfg(server), "openai:fake-gpt"),
        ScoreCache(tmp_path / "c.jsonl"),
        "v1",
        progress=False,
    )
    assert stats.missing == 2 and all(r["missing"] for r in rows)


def fake_elicit(server: FakeOpenAI) -> dict:
    return {"backend": "openai", "model": "fake-gpt", "base_url": server.base_url, "api_key_env": KEY_ENV,
            "max_retries": 2, "retry_wait_s": 0.01, "timeout_s": 10.0}


def test_server_errors_past_the_retry_budget_fail_the_run_with_the_count(
    server_factory, tmp_path, data_mirror, monkeypatch, tiny_variant
):
    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    failing = {"on": True}
    server = server_factory(
        lambda p, nth: (500, {"error": {"message": f"boom {SECRET}"}}) if failing["on"] else good(p, nth)
    )
    experiment = tiny_variant(tmp_path, size=3, elicit=fake_elicit(server))
    out = tmp_path / "out" / "scores.jsonl"
    with pytest.raises(SystemExit) as info:
        main(["--experiment", str(experiment), "--out", str(out), "--no-progress"])
    assert str(info.value).startswith("error: 6 of 6 samples could not be scored (missing: 6 requests failed")
    assert "InternalServerError" in str(info.value) and SECRET not in str(info.value)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and all(r["missing"] and r["error"].startswith("InternalServerError") for r in rows)
    assert len(server.calls) == 6 * 3  # first try + max_retries=2, per sample
    assert not (tmp_path / "out" / "scores.jsonl.meta.json").exists()  # no sidecar for a failed run
    # the server recovers: failed requests were not cached as answers, so the rerun asks again and succeeds
    failing["on"] = False
    main(["--experiment", str(experiment), "--out", str(out), "--no-progress"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert not any(r["missing"] for r in rows) and len(server.calls) == 6 * 4
    meta = json.loads((tmp_path / "out" / "scores.jsonl.meta.json").read_text())
    assert meta["n_requested"] == 6 and meta["elicit_config"]["api_key_env"] == KEY_ENV
    assert_key_never_written(tmp_path)


def test_on_missing_median_lets_the_run_finish_with_missing_recorded(
    server_factory, tmp_path, data_mirror, monkeypatch, tiny_variant
):
    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    server = server_factory(lambda p, nth: (200, completion("no idea" if fake_score(p) <= 3 else "4")))
    experiment = tiny_variant(
        tmp_path, size=10, elicit=fake_elicit(server), on_missing="median", concurrency=8
    )
    out = tmp_path / "scores.jsonl"
    main(["--experiment", str(experiment), "--out", str(out), "--no-progress"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    data = load_experiment(experiment).data.model_copy(update={"mirror": str(data_mirror)})
    expected = [fake_score(build_elicit_prompt(r, "v1")) <= 3 for r in build_scenario(data, "mixed")]
    assert sum(expected) > 0 and [r["missing"] for r in rows] == expected
    assert all(r["raw"] == "no idea" and r["score"] is None for r in rows if r["missing"])
    assert json.loads((tmp_path / "scores.jsonl.meta.json").read_text())["n_missing"] == sum(expected)


def test_retry_after_is_honoured(server_factory, tmp_path):
    headers = [{"Retry-After": "3"}, {"retry-after-ms": "2500"}]

    def limited(prompt: str, nth: int):
        if nth <= 2:
            return 429, {"error": {"message": "rate limited"}}, headers[nth - 1]
        return good(prompt, nth)

    server = server_factory(limited)
    elicitor = OpenAIElicitor(cfg(server, retry_wait_s=0.01, max_retries=3), "openai:fake-gpt")
    slept: list[float] = []
    elicitor.sleep = slept.append  # record the waits instead of sleeping them
    rows, stats = elicit_scores(records(1), elicitor, ScoreCache(tmp_path / "c.jsonl"), "v1", progress=False)
    assert stats.missing == 0 and len(server.calls) == 3
    assert slept == elicitor.retry_waits and len(slept) == 2
    assert slept[0] >= 3.0 and slept[1] >= 2.5  # at least what the server asked for
    assert slept[0] < 3.1 and slept[1] < 2.6  # ... not the exponential backoff on top


def test_a_hanging_server_times_out_and_is_retried(server_factory, tmp_path):
    def hangs_once(prompt: str, nth: int):
        if nth == 1:
            time.sleep(2.0)  # longer than timeout_s
        return good(prompt, nth)

    server = server_factory(hangs_once)
    elicitor = OpenAIElicitor(cfg(server, timeout_s=0.5, max_retries=1), "openai:fake-gpt")
    rows, stats = elicit_scores(records(2), elicitor, ScoreCache(tmp_path / "c.jsonl"), "v1", progress=False)
    assert stats.missing == 0 and len(server.calls) == 4 and len(elicitor.retry_waits) == 2
    assert [r["score"] for r in rows] == [fake_score(build_elicit_prompt(r, "v1")) for r in records(2)]


def test_two_runs_sharing_a_cache_pay_once_and_write_each_line_once(
    server_factory, tmp_path, data_mirror, tiny_variant
):
    server = server_factory(good, delay_s=0.1)
    experiments = []
    for name in ("first", "second"):  # two experiments, the same elicitor and samples, one cache
        folder = tmp_path / name
        folder.mkdir()
        shared = str(tmp_path / "c")
        experiment = tiny_variant(folder, 8, elicit=fake_elicit(server), concurrency=2, cache_dir=shared)
        experiments.append(experiment)
    env = os.environ | {"UAL_DATA_MIRROR": str(data_mirror), KEY_ENV: SECRET}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "ual.elicit", "--experiment", str(e), "--out", str(e.parent / "s.jsonl")],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for e in experiments
    ]
    for run in runs:
        output = run.communicate(timeout=300)[0].decode()
        assert run.returncode == 0, output[-2000:]
    cache = cache_path(load_experiment(experiments[0]).elicit)
    keys = [json.loads(line)["key"] for line in cache.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 16  # each line once
    assert len(server.calls) == len(set(server.calls)) == 16  # each paid request once
    first, second = ([json.loads(x) for x in (e.parent / "s.jsonl").read_text().splitlines()]
                     for e in experiments)
    assert first == second and not any(r["missing"] for r in first)
    metas = [json.loads((e.parent / "s.jsonl.meta.json").read_text()) for e in experiments]
    assert sum(m["n_http_requests"] for m in metas) == 16
    assert_key_never_written(tmp_path)
