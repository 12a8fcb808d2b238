"""Benchmark: time and peak memory of the UAL loss paths against plain CE and HF LabelSmoother.

Each case computes logits from last hidden states h (B, T, H) and an LM head W (V, H), then the loss,
forward + backward, exactly as training does. Cases, side by side in one run:

- ``plain_ce``: logits = h @ W.T, then torch ``F.cross_entropy`` (no smoothing): the baseline.
- ``hf_labelsmoother``: the same logits through transformers' ``LabelSmoother`` (constant epsilon).
- ``ual_reference``: ``ual.losses.label_smoothed_nll_reference`` on the logits (per-sample epsilon).
- ``ual_lean``: ``ual.losses.label_smoothed_nll_lean`` on h and W (chunked, no B x T x V tensor).

Every case runs in a fresh subprocess so that peak memory is its own: on CPU the peak resident set
size above the set-up (inputs, weights) is reported; on CUDA ``torch.cuda.max_memory_allocated`` above
the set-up. Times are the median of ``--reps`` timed repetitions after one warm-up. Ratios are taken
against ``plain_ce`` at the same V. The first ``--prompt-len`` tokens of every row are masked (-100) as
prompts are in SFT; the lean path skips them entirely, the others compute and discard them.

Run:  python benchmarks/loss.py                      (B=4, T=512, H=576, V in 32000 49152 128256)
      python benchmarks/loss.py --vocab 32000 --reps 1  (quick)
Writes benchmarks/out/loss.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = ("plain_ce", "hf_labelsmoother", "ual_reference", "ual_lean")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def run_case(case: str, batch: int, seq: int, hidden: int, vocab: int, reps: int, prompt_len: int) -> dict:
    """Run one case in this process and return its timings and peak memory."""
    import torch
    import torch.nn.functional as F
    from transformers.trainer_pt_utils import LabelSmoother

    from ual.losses import label_smoothed_nll_lean, label_smoothed_nll_reference

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    gen = torch.Generator(device="cpu").manual_seed(0)
    h = (torch.randn(batch, seq, hidden, generator=gen) * 0.5).to(device, dtype).requires_grad_()
    weight = (torch.randn(vocab, hidden, generator=gen) * hidden**-0.5).to(device, dtype).requires_grad_()
    labels = torch.randint(0, vocab, (batch, seq), generator=gen).to(device)
    labels[:, :prompt_len] = -100
    eps = torch.linspace(0.0, 0.2, batch, device=device)
    smoother = LabelSmoother(epsilon=0.1)

    def step() -> None:
        if case == "ual_lean":
            loss = label_smoothed_nll_lean(h, weight, labels, eps)
        else:
            logits = h @ weight.T
            if case == "plain_ce":
                loss = F.cross_entropy(
                    logits[:, :-1].reshape(-1, vocab).float(), labels[:, 1:].reshape(-1), ignore_index=-100
                )
            elif case == "hf_labelsmoother":
                loss = smoother({"logits": logits}, labels, shift_labels=True)
            else:
                loss = label_smoothed_nll_reference(logits, labels, eps)
        loss.backward()
        h.grad = None  # keep weight.grad allocated after the warm-up, as an optimiser would
        if cuda:
            torch.cuda.synchronize()

    step()  # warm-up; allocates weight.grad
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if cuda:
        extra = torch.cuda.max_memory_allocated() - base
    else:
        # ru_maxrss is a high-water mark over the whole process; it is meaningful only if the timed
        # steps went above the set-up and warm-up, which every case does (it builds (B,T,V) or chunk blocks)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        extra = max(peak, peak_before) - base
    logits_bytes = batch * seq * vocab * (2 if cuda else 4)
    return {
        "case": case,
        "vocab": vocab,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "median_s": statistics.median(times),
        "times_s": times,
        "peak_extra_bytes": extra,
        "peak_extra_over_logits": extra / logits_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=576, help="576 = SmolLM2-135M")
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 49152, 128256])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/loss.json"))
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # internal: one subprocess
    args = parser.parse_args()

    shape = (args.batch, args.seq, args.hidden)
    if args.case:
        print(json.dumps(run_case(args.case, *shape, args.vocab[0], args.reps, args.prompt_len)))
        return

    results = []
    for vocab in args.vocab:
        for case in CASES:
            cmd = [sys.executable, __file__, "--case", case, "--vocab", str(vocab), "--reps", str(args.reps),
                   "--batch", str(args.batch), "--seq", str(args.seq), "--hidden", str(args.hidden),
                   "--prompt-len", str(args.prompt_len)]
            # A fixed mmap threshold stops glibc from keeping freed large blocks in the heap, so the
            # resident set size follows live tensors and the peak is comparable across cases.
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            r = results[-1]
            print(f"V={vocab:>6} {case:<17} {r['median_s']:8.3f} s   peak extra {r['peak_extra_bytes'] / 2**20:8.1f} MiB"
                  f"  ({r['peak_extra_over_logits']:.2f}x logits)", flush=True)

    summary = []
    print("\nratios against plain_ce (time, peak extra memory); target ual_lean <= 1.10x time, <= 1.05x memory;")
    print("ual_lean memory at least 2x below hf_labelsmoother at the largest V")
    for vocab in args.vocab:
        rows = {r["case"]: r for r in results if r["vocab"] == vocab}
        base = rows["plain_ce"]
        for case in CASES[1:]:
            entry = {
                "vocab": vocab,
                "case": case,
                "time_ratio": rows[case]["median_s"] / base["median_s"],
                "memory_ratio": rows[case]["peak_extra_bytes"] / base["peak_extra_bytes"],
            }
            summary.append(entry)
            print(f"V={vocab:>6} {case:<17} time x{entry['time_ratio']:.2f}  memory x{entry['memory_ratio']:.2f}")
        lean_vs_hf = rows["hf_labelsmoother"]["peak_extra_bytes"] / rows["ual_lean"]["peak_extra_bytes"]
        summary.append({"vocab": vocab, "case": "hf_labelsmoother/ual_lean memory", "memory_ratio": lean_vs_hf})
        print(f"V={vocab:>6} LabelSmoother uses x{lean_vs_hf:.1f} the peak extra memory of ual_lean")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"batch": args.batch, "seq": args.seq, "hidden": args.hidden, "reps": args.reps,
            "prompt_len": args.prompt_len}
    args.out.write_text(json.dumps({"config": meta, "results": results, "ratios": summary}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
