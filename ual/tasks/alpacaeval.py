"""AlpacaEval: the model's own prompt template, Alpaca stop strings, alpaca_eval's judges and metrics.

- items: the 805 AlpacaEval instructions (``ual.data`` ``alpaca_eval`` / ``eval``), ``evaluate.sizes``
  drawn by ``data.seed``; outputs are matched to items by ``instruction`` (alpaca_eval's key);
- prompt: the model's template (``model.prompt_template`` through ``ual.prompts``: ``alpaca`` or ``chat``);
- stop strings: the Alpaca section headers (a base model trained on the Alpaca template may run on into a
  new turn; the answer is cut where it would);
- scoring: the judge ``evaluate.judge`` (``ual.judges``: alpaca_eval's annotator pipeline) against the
  reference set ``evaluate.reference_outputs`` (``ual.tasks.alpacaeval_references``), each pair shown in
  ``evaluate.judge_orders`` (both orders averaged, or alpaca_eval's random one; ``ual.judges.orders``), and
  ``alpaca_eval.metrics.get_winrate`` over the judged pairs (win rate and standard error in %, wins, draws,
  discrete win rate; no re-implemented win rate), beside the judge's position bias (the share of preference
  that went to the second-shown output, in %; 50 = unbiased). The length-controlled
  win rate (``get_length_controlled_winrate``) is defined against the AlpacaEval 2 baseline and needs
  alpaca_eval's ``df_gamed.csv`` from the Hugging Face hub: it is computed only when the reference is
  ``gpt4_1106_preview`` and that file is in the local HF cache; otherwise it is reported as null with the
  reason (the data mirror does not carry it).
- unparsed judge replies (``evaluate.judge_on_unparsed``): ``report`` = the win rate over the pairs that
  have a verdict in every order shown, ``n_unparsed`` and ``unparsed`` (instruction, orders) in the metrics;
  ``fail`` = an error naming the outputs file, the count and the first instruction. Never imputed, never
  cached (a rerun asks again). With no judged pair the win rate is null.

Inputs: model outputs (``ual.generate``), the reference set. Outputs: metrics (via ``python -m ual.evaluate
--task alpacaeval``; ``reference_set`` = name, file, sha256 of its content),
``<metrics stem>.annotations.json`` (one row per pair: ``preference`` and, with both orders,
``preference_reference_first`` / ``preference_model_first``; ``index`` = the position in the
805-instruction set), the annotation cache and the resolved annotator config (``ual.judges``). The task
object is ``TASK`` (``ual.tasks.TASKS["alpacaeval"]``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ual.prompts import render_prompt
from ual.provenance import write_json
from ual.tasks.alpacaeval_references import load_references, reference_provenance
from ual.tasks.base import Task, TaskInput, mirror_origin

logger = logging.getLogger(__name__)

__all__ = ["ALPACA_STOP_STRINGS", "LC_BASELINE", "TASK", "TASK_VERSION", "AlpacaEvalTask", "load_references"]

TASK_VERSION = 2
ALPACA_STOP_STRINGS = ("### Instruction:", "### Input:", "### Response:")
LC_BASELINE = "gpt4_1106_preview"


def _length_controlled(annotations: Any, reference: str) -> dict[str, Any]:
    """alpaca_eval's length-controlled win rate of the annotations (a DataFrame), or null with the reason."""
    if reference != LC_BASELINE:
        return {
            "length_controlled_winrate": None,
            "lc_note": f"not applicable: LC is defined against the AlpacaEval 2 baseline {LC_BASELINE}",
        }
    from alpaca_eval import constants as ae_constants
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(
        "tatsu-lab/alpaca_eval", "df_gamed.csv", repo_type="dataset", cache_dir=ae_constants.DEFAULT_CACHE_DIR
    )
    if not isinstance(cached, str):
        return {
            "length_controlled_winrate": None,
            "lc_note": "unavailable: alpaca_eval's df_gamed.csv (HF dataset tatsu-lab/alpaca_eval) is not in "
            "the Hugging Face cache; plain win rate only",
        }
    from alpaca_eval.metrics import get_length_controlled_winrate

    metrics = get_length_controlled_winrate(annotations, save_weights_dir=None)  # nothing into the package
    return {
        "length_controlled_winrate": float(metrics["length_controlled_winrate"]),
        "lc_standard_error": float(metrics["lc_standard_error"]),
        "lc_note": "alpaca_eval length_controlled_v1",
    }


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers for JSON."""
    return value.item() if hasattr(value, "item") else value


class AlpacaEvalTask(Task):
    """AlpacaEval with the model's own template; scored by an alpaca_eval judge."""

    def evaluation_inputs(self, experiment: Any) -> list[TaskInput]:
        """The 805 instructions and the reference outputs the judge compares against."""
        return [*super().evaluation_inputs(experiment),
                TaskInput("references", reference=experiment.evaluate.reference_outputs)]

    def calibration_input(self, experiment: Any) -> TaskInput:
        return TaskInput(None, reference=experiment.analysis.calibration.alpacaeval_references)

    def calibration_references(self, experiment: Any) -> tuple[list[dict], str]:
        """The outputs of ``analysis.calibration.alpacaeval_references`` (e.g. gpt4_1106_preview) for the 805
        instructions (mirror ``alpaca_eval/results/<generator>/model_outputs.json``) as ``ual.data`` records."""
        from ual.data import load_alpaca_eval_references, record_id, resolve_mirror

        generator = experiment.analysis.calibration.alpacaeval_references
        origin = mirror_origin(resolve_mirror(experiment.data.mirror),
                               f"alpaca_eval/results/{generator}/model_outputs.json", "hub:tatsu-lab/alpaca_eval")
        dataset = f"alpaca_eval_references:{generator}"
        records = [
            {"id": record_id(dataset, row["instruction"], "", row["output"]), "dataset": dataset,
             "instruction": row["instruction"], "input": "", "output": row["output"], "answer": None}
            for row in load_alpaca_eval_references(generator, experiment.data.mirror)
        ]
        return records, origin

    def reference_label(self, experiment: Any) -> str:
        return f"AlpacaEval references ({experiment.analysis.calibration.alpacaeval_references})"

    def prompt_template(self, model_template: str) -> str:
        return model_template

    def render_prompt(self, record: dict, model_template: str, tokenizer: Any = None) -> str:
        return render_prompt(record, model_template, tokenizer)

    def score(
        self, outputs: dict[str, str], records: list[dict], experiment: Any, out: Path, outputs_path: Path
    ) -> dict:
        """Judge the model's outputs against the references and return alpaca_eval's metrics."""
        from ual.data import load_records
        from ual.judges import judge, resolve_annotator
        from ual.judges.orders import position_bias

        # absolute: alpaca_eval resolves a relative annotator config against its own package folder
        cfg, out_dir = experiment.evaluate, Path(out).resolve().parent
        eval_set = load_records("alpaca_eval", "eval", experiment.data.mirror)
        instructions = [r["instruction"] for r in eval_set]
        references, origin = load_references(cfg.reference_outputs, experiment.data.mirror, instructions)
        by_instruction = {row["instruction"]: row for row in references}
        generator = json.loads(Path(outputs_path).read_text(encoding="utf-8"))[0].get("generator", "model")
        model_outputs = [
            {"instruction": r["instruction"], "output": outputs[r["id"]], "generator": generator}
            for r in records
        ]
        chosen_references = [
            {key: by_instruction[r["instruction"]][key] for key in ("instruction", "output")}
            | {"generator": by_instruction[r["instruction"]].get("generator", cfg.reference_outputs)}
            for r in records
        ]
        config_path, judge_info = resolve_annotator(cfg, out_dir)
        cache_path = out_dir / "annotations_cache" / f"{judge_info['annotator']}.json"
        pairs, n_prompts = judge(
            model_outputs, chosen_references, config_path, cache_path, judge_info["judge_orders"]
        )
        unparsed = _unparsed(pairs, cfg.judge_on_unparsed, outputs_path, judge_info, config_path, cache_path)
        position = {instruction: index for index, instruction in enumerate(instructions)}
        pairs.index = [position[i] for i in pairs["instruction"]]  # LC's instruction index
        judged = pairs[pairs["preference"].notna()]
        metrics = _winrate(judged, cfg.reference_outputs)
        annotations_path = Path(out).with_suffix(".annotations.json")
        write_json(annotations_path, json.loads(pairs.reset_index().to_json(orient="records")))
        return {
            "metric": "win_rate",
            **metrics,
            **position_bias(judged, judge_info["judge_orders"]),
            "n_pairs": len(pairs),
            **unparsed,
            "judge_orders": judge_info["judge_orders"],
            "avg_length": int(sum(len(o["output"]) for o in model_outputs) / len(model_outputs)),
            "reference_outputs": cfg.reference_outputs,
            "reference_set": reference_provenance(cfg.reference_outputs, origin, references),
            "judge": judge_info,
            "judge_prompts_this_run": n_prompts,
            "annotations_file": str(annotations_path),
            "annotations_cache": str(cache_path),
            "annotator_config": str(config_path),
        }


def _unparsed(
    pairs: Any, policy: str, outputs_path: Path, judge_info: dict, config_path: Path, cache_path: Path
) -> dict[str, Any]:
    """Pairs without a verdict (a reply the parser could not read in some order shown): counted and named;
    fatal under ``judge_on_unparsed: fail``. None is cached, so a rerun asks the judge again."""
    from ual.judge_errors import AlpacaEvalError

    missing = pairs[pairs["preference"].isna()]
    listed = [
        {"instruction": row["instruction"], "orders": row["orders_unparsed"]}
        for row in missing[["instruction", "orders_unparsed"]].to_dict("records")
    ]
    if listed:
        where = (
            f"the judge '{judge_info['annotator']}' gave no parseable verdict for {len(listed)} of "
            f"{len(pairs)} pairs (parser of {config_path}; raw replies in the log above; not cached in "
            f"{cache_path}, so a rerun asks again); first: {listed[0]['instruction'][:80]!r}"
        )
        if policy == "fail":
            raise AlpacaEvalError(f"{outputs_path}: {where}")
        logger.warning("%s: %s; the win rate is over the %d parsed pairs (judge_on_unparsed: report)",
                       outputs_path, where, len(pairs) - len(listed))
    return {"n_unparsed": len(listed), "unparsed": listed, "judge_on_unparsed": policy}


def _winrate(judged: Any, reference: str) -> dict[str, Any]:
    """alpaca_eval's get_winrate (and LC where it applies) over the judged pairs; nulls when there are
    none."""
    from alpaca_eval.metrics import get_winrate

    if judged.empty:
        return {"win_rate": None, "standard_error": None, "n_total": 0,
                "length_controlled_winrate": None, "lc_note": "no judged pair"}
    metrics = {key: _plain(value) for key, value in get_winrate(judged).items()}
    return metrics | _length_controlled(judged, reference)


TASK = AlpacaEvalTask(
    name="alpacaeval",
    version=TASK_VERSION,
    dataset="alpaca_eval",
    split="eval",
    stop_strings=ALPACA_STOP_STRINGS,
    match_key="instruction",
    label="AlpacaEval win rate (%)",
    percent_scale=1.0,  # alpaca_eval's win rate is in percent
    judged=True,
)
