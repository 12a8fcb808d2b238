"""Benchmark: time and peak memory of the UAL loss paths against plain CE, LabelSmoother and PyTorch's kernel.

Each case computes logits from last hidden states h (B, T, H) through an LM head W (V, H) (an ``nn.Linear``),
then the loss, forward + backward, exactly as training does. Cases, side by side in one run:

- ``plain_ce``: logits of every position, then ``F.cross_entropy`` (no smoothing), as HF models compute it.
- ``plain_ce_response``: plain CE with the same tokens through the head as the lean path (only the response
  tokens' logits, materialised): the baseline of the targets ("plain CE computed the same way").
- ``hf_labelsmoother``: every position's logits through transformers' ``LabelSmoother`` (constant epsilon).
- ``ual_reference``: ``ual.losses.label_smoothed_nll_reference`` on every position's logits.
- ``ual_lean``: ``ual.losses.label_smoothed_nll_lean`` on h and W (chunked, no B x T x V tensor), through
  ``ual.lm_head.run_with_head`` as in training.
- ``torch_linear_ce``: ``ual.losses.label_smoothed_nll_linear_ce``: PyTorch's chunked
  ``F.linear_cross_entropy(reduction="none")`` plus the correction ``eps * (h . w_y - h . mean(W))``.

Peak memory is the rise above the set-up (inputs, head, its gradient after a warm-up step): on CPU the peak
resident set size of a fresh subprocess per (case, round) (glibc ``MALLOC_MMAP_THRESHOLD_`` fixed, so freed
blocks leave the heap); on CUDA ``torch.cuda.max_memory_allocated`` in one process, bf16. Rounds are
interleaved (every case once per round, ``--rounds`` times); the best time of each case (the least disturbed
round, as benchmarks/generate.py does; the median is in the JSON too) and its median peak are reported, as the
shared machine's load drifts by minutes. Ratios are against ``plain_ce_response`` at the same V.
The first ``--prompt-len`` tokens of every row are masked (-100), as prompts are in SFT.

``--zero3``: the head is partitioned by DeepSpeed ZeRO-3 over ``--ranks`` CPU processes (gloo,
experiments/deepspeed/zero3_cpu.json, persistence threshold 0); every rank computes its own batch and
``engine.backward`` reduce-scatters the head's gradient. Peak memory is the larger of the ranks'.

Run:  python benchmarks/loss.py                          (B=4, T=512, H=576, V in 32000 128256, 3 rounds)
      python benchmarks/loss.py --vocab 32000 --rounds 1   (quick)
      python benchmarks/loss.py --zero3 --rounds 2         (2 CPU ranks)
Writes benchmarks/out/loss.json (loss_zero3.json with --zero3).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = (
    "plain_ce",
    "plain_ce_response",
    "hf_labelsmoother",
    "ual_reference",
    "ual_lean",
    "torch_linear_ce",
)
BASELINE = "plain_ce_response"
TARGETS = (
    "ual_lean <= 1.05x time and <= 1.05x peak memory of plain_ce_response; "
    "hf_labelsmoother >= 6x ual_lean memory"
)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def head_module(hidden: int, vocab: int):
    """The LM head as a model: ``get_output_embeddings()`` (for ual.lm_head) and a case's loss as forward."""
    import torch
    import torch.nn.functional as F
    from transformers.trainer_pt_utils import LabelSmoother

    from ual.lm_head import run_with_head
    from ual.losses import label_smoothed_nll_lean, label_smoothed_nll_linear_ce, label_smoothed_nll_reference

    smoother = LabelSmoother(epsilon=0.1)

    def lean(weight, bias, h, y, e):
        return label_smoothed_nll_lean(h, weight, y, e, bias=bias)

    def linear_ce(weight, bias, h, y, e):
        return label_smoothed_nll_linear_ce(h, weight, y, e, bias=bias)

    class HeadLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm_head = torch.nn.Linear(hidden, vocab, bias=False)

        def get_output_embeddings(self):
            return self.lm_head

        def forward(self, case: str, h, labels, eps):
            if case == "ual_lean":
                return run_with_head(self, lean, h, labels, eps)
            if case == "torch_linear_ce":
                return run_with_head(self, linear_ce, h, labels, eps)
            if case == "plain_ce_response":
                mask = labels[:, 1:] != -100
                logits = self.lm_head(h[:, :-1][mask])
                return F.cross_entropy(logits.float(), labels[:, 1:][mask])
            logits = self.lm_head(h)
            if case == "plain_ce":
                return F.cross_entropy(
                    logits[:, :-1].reshape(-1, vocab).float(), labels[:, 1:].reshape(-1), ignore_index=-100
                )
            if case == "hf_labelsmoother":
                return smoother({"logits": logits}, labels, shift_labels=True)
            return label_smoothed_nll_reference(logits, labels, eps)

    return HeadLoss()


def _zero3_engine(module):
    import deepspeed

    config = json.loads((REPO / "experiments/deepspeed/zero3_cpu.json").read_text())
    config["optimizer"]["params"].update(lr=1e-6, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0)
    config["zero_optimization"].update(
        reduce_bucket_size=5 * 10**7,
        stage3_prefetch_bucket_size=5 * 10**7,
        stage3_param_persistence_threshold=0,
    )
    world = int(os.environ["WORLD_SIZE"])
    config.update(
        gradient_accumulation_steps=1,
        gradient_clipping=0.0,
        train_micro_batch_size_per_gpu=1,
        train_batch_size=world,
    )
    engine, *_ = deepspeed.initialize(model=module, model_parameters=module.parameters(), config=config)
    return engine


def run_case(case: str, args, vocab: int) -> dict:
    """Warm-up step, then ``args.reps`` timed steps of one case in this process; times and peak memory."""
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    rank = int(os.environ.get("RANK", "0"))
    module = head_module(args.hidden, vocab)
    with torch.no_grad():  # the same head on every rank
        module.lm_head.weight.normal_(0.0, args.hidden**-0.5, generator=torch.Generator().manual_seed(0))
    module = module.to(device, dtype)
    engine = _zero3_engine(module) if args.zero3 else None
    gen = torch.Generator(device="cpu").manual_seed(rank)  # every rank its own batch
    h = torch.randn(args.batch, args.seq, args.hidden, generator=gen) * 0.5
    h = h.to(device, dtype).requires_grad_()
    labels = torch.randint(0, vocab, (args.batch, args.seq), generator=gen).to(device)
    labels[:, : args.prompt_len] = -100
    eps = torch.linspace(0.0, 0.2, args.batch, device=device)

    def step() -> None:
        """Forward + backward (timed); under ZeRO-3 the optimiser step that closes the round is not timed."""
        if engine is not None:
            engine.backward(engine(case, h, labels, eps))
        else:
            module(case, h, labels, eps).backward()
        h.grad = None  # the head's gradient stays allocated after the warm-up, as under an optimiser
        if cuda:
            torch.cuda.synchronize()

    def optimiser_step() -> None:
        if engine is not None:
            engine.step()  # lr 1e-6: the head barely moves

    step()  # warm-up; allocates the head's gradient (and, under ZeRO-3, the optimiser state)
    optimiser_step()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base, peak_before = _rss_bytes(), _peak_rss_bytes()
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        optimiser_step()
    if cuda:
        extra = torch.cuda.max_memory_allocated() - base
    else:
        # ru_maxrss is a high-water mark of the whole process; every case rises above its set-up in the timed
        # steps (it builds (B, T, V) logits or (chunk, V) blocks), so the peak is this step's
        extra = max(_peak_rss_bytes(), peak_before) - base
    return {
        "case": case,
        "vocab": vocab,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "seconds": min(times),
        "peak_extra_bytes": extra,
        "rank": rank,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _subprocess_case(case: str, vocab: int, args) -> dict:
    """One (case, round) in a fresh process (CPU: its own peak RSS); under --zero3 on --ranks processes."""
    shape = ("batch", "seq", "hidden", "prompt_len")
    passthrough = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in shape]
    results = Path(tempfile.mkdtemp(prefix="bench_loss_"))  # one file per rank: their stdout interleaves
    cmd = [__file__, "--case", case, "--vocab", str(vocab), "--reps", "1", *passthrough, f"--out={results}"]
    if args.zero3:
        cmd = ["-m", "torch.distributed.run", f"--nproc_per_node={args.ranks}", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", *cmd, "--zero3"]
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": str(args.threads),
        "DS_ACCELERATOR": "cpu",
    }
    proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, env=env, cwd=REPO)
    rows = [json.loads(path.read_text()) for path in sorted(results.glob("rank*.json"))]
    shutil.rmtree(results)
    if proc.returncode or not rows:
        raise SystemExit(f"case {case} V={vocab} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    worst = max(rows, key=lambda r: r["peak_extra_bytes"])
    return {**worst, "seconds": max(r["seconds"] for r in rows), "ranks": len(rows)}


def measure(args) -> list[dict]:
    """Every case at every V, ``args.rounds`` interleaved rounds; the best time and median peak of each."""
    import torch

    rows = []
    for vocab in args.vocab:
        rounds: dict[str, list[dict]] = {case: [] for case in args.cases}
        for _ in range(args.rounds):
            for case in args.cases:
                if torch.cuda.is_available():  # exact allocator statistics: no subprocess needed
                    result = run_case(case, args, vocab)
                    torch.cuda.empty_cache()
                else:
                    result = _subprocess_case(case, vocab, args)
                rounds[case].append(result)
                print(f"  V={vocab:>6} {case:<18} {result['seconds']:8.3f} s  peak extra "
                      f"{result['peak_extra_bytes'] / 2**20:8.1f} MiB", flush=True)
        for case, results in rounds.items():
            rows.append({
                **results[0],
                "seconds": min(r["seconds"] for r in results),  # the least disturbed round
                "median_seconds": statistics.median(r["seconds"] for r in results),
                "peak_extra_bytes": statistics.median(r["peak_extra_bytes"] for r in results),
                "all_seconds": [r["seconds"] for r in results],
                "all_peak_extra_bytes": [r["peak_extra_bytes"] for r in results],
                "logits_bytes": args.batch * args.seq * vocab * (2 if torch.cuda.is_available() else 4),
            })
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """Time and peak memory of every case over the baseline's at the same V, and LabelSmoother over lean."""
    out = []
    for vocab in sorted({r["vocab"] for r in rows}):
        at = {r["case"]: r for r in rows if r["vocab"] == vocab}
        base = at.get(BASELINE)
        for case, row in at.items():
            if base is not None and case != BASELINE:
                out.append({"vocab": vocab, "case": case, "vs": BASELINE,
                            "time_ratio": row["seconds"] / base["seconds"],
                            "memory_ratio": row["peak_extra_bytes"] / base["peak_extra_bytes"]})
        if "hf_labelsmoother" in at and "ual_lean" in at:
            out.append({"vocab": vocab, "case": "hf_labelsmoother", "vs": "ual_lean",
                        "memory_ratio": at["hf_labelsmoother"]["peak_extra_bytes"]
                        / at["ual_lean"]["peak_extra_bytes"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=576, help="576 = SmolLM2-135M")
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 128256])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best time reported)")
    parser.add_argument("--reps", type=int, default=1, help="timed steps per round (the fastest is kept)")
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--zero3", action="store_true", help="ZeRO-3 head on --ranks CPU ranks")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # internal: one subprocess
    args = parser.parse_args()

    if args.case:
        import torch

        torch.set_num_threads(args.threads)
        result = run_case(args.case, args, args.vocab[0])
        (args.out / f"rank{result['rank']}.json").write_text(json.dumps(result))
        return

    from ual.provenance import run_metadata

    mode = f"DeepSpeed ZeRO-3 on {args.ranks} CPU ranks" if args.zero3 else "one process"
    print(f"B={args.batch} T={args.seq} H={args.hidden}, {args.prompt_len} prompt tokens masked, {mode}")
    rows = measure(args)
    summary = ratios(rows)
    print(f"\nbest time, median peak of {args.rounds} rounds; ratios against {BASELINE}; targets: {TARGETS}")
    for row in rows:
        over_logits = row["peak_extra_bytes"] / row["logits_bytes"]
        print(f"V={row['vocab']:>6} {row['case']:<18} {row['seconds']:8.3f} s  peak extra "
              f"{row['peak_extra_bytes'] / 2**20:8.1f} MiB ({over_logits:.2f}x logits)")
    for entry in summary:
        time_part = f"time x{entry['time_ratio']:.3f}  " if "time_ratio" in entry else ""
        print(f"V={entry['vocab']:>6} {entry['case']:<18} vs {entry['vs']:<18} {time_part}"
              f"memory x{entry['memory_ratio']:.3f}")
    out = args.out or REPO / ("benchmarks/out/loss_zero3.json" if args.zero3 else "benchmarks/out/loss.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("case", "out")}
    payload = {"settings": settings, "mode": mode, "baseline": BASELINE, "targets": TARGETS, "results": rows,
               "ratios": summary, "provenance": run_metadata(benchmark="loss")}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
