"""AlpacaEval: the model's own prompt template, Alpaca stop strings, alpaca_eval's judges and metrics.

- items: the 805 AlpacaEval instructions (``ual.data`` ``alpaca_eval`` / ``eval``), ``evaluate.sizes``
  drawn by ``data.seed``; outputs are matched to items by ``instruction`` (alpaca_eval's key);
- prompt: the model's template (``model.prompt_template`` through ``ual.prompts``: ``alpaca`` or ``chat``);
- stop strings: the Alpaca section headers (a base model trained on the Alpaca template may run on into a
  new turn; the answer is cut where it would);
- scoring: the judge ``evaluate.judge`` (``ual.judges``: alpaca_eval's annotator pipeline) against the
  reference outputs ``evaluate.reference_outputs``, and ``alpaca_eval.metrics.get_winrate`` (win rate and
  standard error in %, wins, draws, discrete win rate; no re-implemented win rate). The length-controlled
  win rate (``get_length_controlled_winrate``) is defined against the AlpacaEval 2 baseline and needs
  alpaca_eval's ``df_gamed.csv`` from the Hugging Face hub: it is computed only when the reference is
  ``gpt4_1106_preview`` and that file is in the local HF cache; otherwise it is reported as null with the
  reason (the mirror of ../shared/data does not carry it).

Inputs: model outputs (``ual.generate``), reference outputs (``ual.data.load_alpaca_eval_references`` or a
model_outputs JSON path in ``evaluate.reference_outputs``). Outputs: metrics (via ``python -m ual.evaluate
--task alpacaeval``), ``<metrics stem>.annotations.json`` (alpaca_eval's annotations of this model, with
``index`` = the position in the 805-instruction set), the annotation cache and the resolved annotator config
(``ual.judges``). The task object is ``TASK`` (``ual.tasks.TASKS["alpacaeval"]``).

Changelog: TASK_VERSION 1 - initial. Split out of ``ual.evaluate.alpacaeval`` (judging: ``ual.judges``);
outputs unchanged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ual.prompts import render_prompt
from ual.provenance import write_json
from ual.tasks.base import Task

logger = logging.getLogger(__name__)

__all__ = ["ALPACA_STOP_STRINGS", "LC_BASELINE", "TASK", "TASK_VERSION", "AlpacaEvalTask", "load_references"]

TASK_VERSION = 1
ALPACA_STOP_STRINGS = ("### Instruction:", "### Input:", "### Response:")
LC_BASELINE = "gpt4_1106_preview"


def load_references(reference: str, mirror: str | None, instructions: list[str]) -> list[dict]:
    """Reference outputs, checked: one per AlpacaEval instruction (``instructions``, the 805 in order).

    ``reference`` is a generator name (``ual.data.load_alpaca_eval_references``) or a model_outputs JSON path.
    """
    from ual.data import load_alpaca_eval_references, resolve_mirror
    from ual.judges import AlpacaEvalError

    if reference.endswith(".json"):
        origin = reference
        try:
            rows = json.loads(Path(reference).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise AlpacaEvalError(f"{reference}: cannot read reference outputs ({exc})") from None
    else:
        root = resolve_mirror(mirror)
        path = root / f"alpaca_eval/results/{reference}/model_outputs.json" if root else None
        origin = str(path) if path and path.is_file() else f"hub:tatsu-lab/alpaca_eval ({reference})"
        rows = load_alpaca_eval_references(reference, mirror)
    if not isinstance(rows, list) or len(rows) != len(instructions):
        count = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise AlpacaEvalError(
            f"{origin}: {count} reference outputs, expected {len(instructions)} "
            "(one per AlpacaEval instruction)"
        )
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not all(
            isinstance(row.get(k), str) for k in ("instruction", "output")
        ):
            raise AlpacaEvalError(f"{origin}: row {number}: needs string 'instruction' and 'output'")
    found = {row["instruction"] for row in rows}
    if len(found) != len(rows) or found != set(instructions):
        raise AlpacaEvalError(
            f"{origin}: reference instructions are not the AlpacaEval set "
            f"({len(rows) - len(found)} duplicates, {len(set(instructions) - found)} missing)"
        )
    return rows


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

    def prompt_template(self, model_template: str) -> str:
        return model_template

    def render_prompt(self, record: dict, model_template: str, tokenizer: Any = None) -> str:
        return render_prompt(record, model_template, tokenizer)

    def score(
        self, outputs: dict[str, str], records: list[dict], experiment: Any, out: Path, outputs_path: Path
    ) -> dict:
        """Judge the model's outputs against the references and return alpaca_eval's metrics."""
        from alpaca_eval.metrics import get_winrate

        from ual.data import load_records
        from ual.judges import AlpacaEvalError, judge, resolve_annotator

        # absolute: alpaca_eval resolves a relative annotator config against its own package folder
        cfg, out_dir = experiment.evaluate, Path(out).resolve().parent
        eval_set = load_records("alpaca_eval", "eval", experiment.data.mirror)
        instructions = [r["instruction"] for r in eval_set]
        references = load_references(cfg.reference_outputs, experiment.data.mirror, instructions)
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
        annotations, n_prompts = judge(model_outputs, chosen_references, config_path, cache_path)
        has_preference = "preference" in annotations
        unparsed = int(annotations["preference"].isna().sum()) if has_preference else len(records)
        if unparsed or len(annotations) != len(records):
            raise AlpacaEvalError(
                f"{outputs_path}: the judge '{judge_info['annotator']}' gave {unparsed} of {len(records)} "
                f"replies that its parser ({config_path}) could not read (raw replies in the log above); "
                f"they were not cached in {cache_path}, so a rerun asks again"
            )
        position = {instruction: index for index, instruction in enumerate(instructions)}
        annotations.index = [position[i] for i in annotations["instruction"]]  # LC's instruction index
        metrics = {key: _plain(value) for key, value in get_winrate(annotations).items()}
        metrics.update(_length_controlled(annotations, cfg.reference_outputs))
        annotations_path = Path(out).with_suffix(".annotations.json")
        write_json(annotations_path, json.loads(annotations.reset_index().to_json(orient="records")))
        return {
            "metric": "win_rate",
            **metrics,
            "avg_length": int(sum(len(o["output"]) for o in model_outputs) / len(model_outputs)),
            "reference_outputs": cfg.reference_outputs,
            "judge": judge_info,
            "judge_prompts_this_run": n_prompts,
            "annotations_file": str(annotations_path),
            "annotations_cache": str(cache_path),
            "annotator_config": str(config_path),
        }


TASK = AlpacaEvalTask(
    name="alpacaeval",
    version=TASK_VERSION,
    dataset="alpaca_eval",
    split="eval",
    stop_strings=ALPACA_STOP_STRINGS,
    match_key="instruction",
)
