"""``python -m ual.elicit --input`` on a JSONL file through the real llama.cpp server (``llama_server`` in
tests/conftest.py): every row comes back, in order, with its columns, an uncertainty from logprobs and
epsilon;
a rerun is served by the cache (the server's prompt-token counter does not move)."""

from __future__ import annotations

import json

import pytest

from ual.elicit.cli import main

pytestmark = pytest.mark.slow
CHAT = [
    [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "2 + 3 = 5."}],
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ],
    [
        {"role": "user", "content": "Write a word that rhymes with cat."},
        {"role": "assistant", "content": "Hat."},
    ],
]


def test_a_chat_jsonl_is_scored_through_the_server_and_rerun_from_the_cache(tmp_path, llama_server):
    rows = [{"messages": chat, "tag": i} for i, chat in enumerate(CHAT)]
    data, out = tmp_path / "chat.jsonl", tmp_path / "scored.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = [
        "--input",
        str(data),
        "--out",
        str(out),
        "--backend",
        "openai",
        "--model",
        llama_server.alias,
        "--base-url",
        llama_server.base_url,
        "--concurrency",
        "2",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--eps-max",
        "0.3",
        "--no-progress",
    ]
    main(argv)
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [{k: r[k] for k in ("messages", "tag")} for r in scored] == rows
    assert all(
        0.0 <= r["uncertainty"] <= 1.0 and r["epsilon"] == pytest.approx(0.3 * r["uncertainty"])
        for r in scored
    )
    meta = json.loads((tmp_path / "scored.jsonl.meta.json").read_text())
    assert meta["n"] == 4 and meta["n_missing"] == 0 and meta["read_from"] == {"logprobs": 4}
    assert meta["source"] == "verbalized" and meta["input"] == str(data)
    before = llama_server.prompt_tokens_processed()
    main(argv)
    assert llama_server.prompt_tokens_processed() == before
    assert [json.loads(line) for line in out.read_text().splitlines()] == scored
