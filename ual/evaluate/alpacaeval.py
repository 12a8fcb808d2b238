"""AlpacaEval through alpaca_eval's own annotator pipeline and metrics (no re-implemented win rate).

Judges (``evaluate.judge``), each an alpaca_eval annotator config folder selected by name:
- ``alpaca_eval_gpt4`` (AlpacaEval 1; reference ``text_davinci_003``; the paper-profile default) and
  ``weighted_alpaca_eval_gpt4_turbo`` (AlpacaEval 2; reference ``gpt4_1106_preview``), or any other stock
  config of alpaca_eval 0.6.6 or a path to a config folder;
- any OpenAI-compatible endpoint: ``judge_base_url`` (+ ``judge_model``) is passed through alpaca_eval's
  client-config mechanism (a ``default: [{base_url}]`` YAML written beside the metrics); the key is read from
  the environment variable named by ``judge_api_key_env`` (default ``OPENAI_API_KEY``), never written;
- ``local`` = ``annotators/ual_local_judge_v1``: a local transformers model scored by the token
  probabilities of the two choices (``ual.evaluate.local_judge``), for the offline tiny profile.

The annotator config is materialised under the output folder (prompt path made absolute, judge overrides
filled in, the annotator renamed ``<config>__<judge>`` whenever an override changes the judge), so the
annotations record exactly what judged them. alpaca_eval caches annotations keyed by (instruction, output_1,
output_2, annotator) in ``annotations_cache/<annotator>.json`` beside the metrics (never inside the installed
package), so rerunning the same command makes no judge call; replies that cannot be parsed are not cached
and fail the run with a count.

Metrics: ``alpaca_eval.metrics.get_winrate`` (win rate and standard error in %, wins, draws, discrete win
rate). The length-controlled win rate (``get_length_controlled_winrate``) is defined against the AlpacaEval 2
baseline and needs alpaca_eval's ``df_gamed.csv`` from the Hugging Face hub: it is computed only when the
reference is ``gpt4_1106_preview`` and that file is in the local HF cache; otherwise it is reported as null
with the reason (the mirror of ../shared/data does not carry it).

Inputs: model outputs (``ual.generate``), reference outputs (``ual.data.load_alpaca_eval_references`` or a
model_outputs JSON path in ``evaluate.reference_outputs``). Outputs: metrics (via ``python -m ual.evaluate
--task alpacaeval``), ``<metrics stem>.annotations.json`` (alpaca_eval's annotations of this model, with
``index`` = the position in the 805-instruction set), the annotation cache and the resolved annotator config.

Changelog: TASK_VERSION 1 - initial.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from alpaca_eval import constants as ae_constants
from alpaca_eval.annotators.pairwise_evaluator import PairwiseAnnotator, SinglePairwiseAnnotator
from alpaca_eval.metrics import get_winrate

from ual.config import EvaluateConfig
from ual.evaluate import write_json
from ual.evaluate.local_judge import COMPLETIONS

logger = logging.getLogger(__name__)

__all__ = [
    "JUDGE_ALIASES",
    "TASK_VERSION",
    "AlpacaEvalError",
    "evaluate",
    "find_annotator_config",
    "judge",
    "load_references",
    "resolve_annotator",
]

TASK_VERSION = 1
ANNOTATORS_DIR = Path(__file__).parent / "annotators"
STOCK_ANNOTATORS_DIR = Path(ae_constants.EVALUATORS_CONFIG_DIR)
JUDGE_ALIASES = {"local": "ual_local_judge_v1"}
LC_BASELINE = "gpt4_1106_preview"


class AlpacaEvalError(ValueError):
    """Bad AlpacaEval input or judge output; the message names the file."""


# --------------------------------------------------------------------------- annotator configs


def find_annotator_config(judge_name: str) -> Path:
    """``configs.yaml`` of a judge: a folder path, ual's ``annotators/<name>``, or alpaca_eval's stock one."""
    name = JUDGE_ALIASES.get(judge_name, judge_name)
    candidates = [
        Path(name) / "configs.yaml",
        ANNOTATORS_DIR / name / "configs.yaml",
        STOCK_ANNOTATORS_DIR / name / "configs.yaml",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise AlpacaEvalError(
        f"judge '{judge_name}': no annotator config at {', '.join(str(c) for c in candidates)}"
    )


def _resolve_prompt(template: str, config_file: Path) -> Path:
    """alpaca_eval resolves prompt paths against the folder above the config; ual also tries the stock one."""
    for base in (config_file.parents[1], STOCK_ANNOTATORS_DIR):
        if (base / template).is_file():
            return (base / template).resolve()
    raise AlpacaEvalError(f"{config_file}: prompt_template '{template}' not found")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")[-40:]


def resolve_annotator(cfg: EvaluateConfig, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Write the judge's resolved annotator config under ``out_dir``; return (its path, judge description)."""
    source = find_annotator_config(cfg.judge)
    configs = yaml.safe_load(source.read_text())
    if not isinstance(configs, dict) or len(configs) != 1:
        raise AlpacaEvalError(f"{source}: expected exactly one annotator entry")
    ((name, entry),) = configs.items()
    entry = copy.deepcopy(entry)
    entry["prompt_template"] = str(_resolve_prompt(entry["prompt_template"], source))
    kwargs = dict(entry.get("completions_kwargs") or {})
    fn_completions = entry.get("fn_completions", "openai_completions")
    identity: dict[str, Any] = {}  # overrides that change the judge -> part of the annotator name
    if fn_completions in COMPLETIONS:
        if not cfg.judge_model:
            raise AlpacaEvalError(
                f"{source}: judge '{cfg.judge}' needs evaluate.judge_model (a ual.models source)"
            )
        identity = {"model_name": cfg.judge_model, "num_hidden_layers": cfg.judge_num_hidden_layers}
        kwargs.update(identity, batch_size=cfg.judge_batch_size)
    elif fn_completions == "openai_completions":
        if cfg.judge_model and cfg.judge_model != kwargs.get("model_name"):
            identity["model_name"] = cfg.judge_model  # the stock model keeps the stock name (and its caches)
        client: dict[str, str] = {}
        if cfg.judge_base_url:
            client["base_url"] = identity["base_url"] = cfg.judge_base_url
            # a chat endpoint, as in alpaca_eval's own vLLM-server configs
            kwargs.setdefault("requires_chatml", True)
        env = cfg.judge_api_key_env or "OPENAI_API_KEY"
        if not os.environ.get(env):
            raise AlpacaEvalError(f"judge '{cfg.judge}' calls an API: set the environment variable {env}")
        os.environ["OPENAI_API_KEY"] = os.environ[env]  # read by the OpenAI client; never written to disk
        client_path = out_dir / "openai_client_config.yaml"
        client_path.parent.mkdir(parents=True, exist_ok=True)
        client_path.write_text(yaml.safe_dump({"default": [client]}))
        kwargs["client_config_path"] = str(client_path.resolve())
        kwargs.update({k: v for k, v in identity.items() if k == "model_name"})
    elif cfg.judge_model or cfg.judge_base_url:
        raise AlpacaEvalError(f"{source}: judge_model / judge_base_url apply to openai or local judges only")
    entry["completions_kwargs"] = kwargs
    annotator = name
    if identity and any(v is not None for v in identity.values()):
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
        annotator = f"{name}__{_slug(str(identity.get('model_name') or identity.get('base_url')))}-{digest}"
    config_path = out_dir / "annotator_config" / annotator / "configs.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump({annotator: entry}, sort_keys=False))
    description = {
        "judge": cfg.judge,
        "annotator": annotator,
        "source_config": str(source),
        "fn_completions": fn_completions,
        "judge_model": kwargs.get("model_name"),
        **identity,
    }
    return config_path, description


class _SinglePairwiseAnnotator(SinglePairwiseAnnotator):
    """alpaca_eval's single pairwise annotator that also resolves ual's completions functions by name
    (``local_judge.COMPLETIONS``) and counts the prompts sent to the judge."""

    def __init__(self, *args: Any, fn_completions: Any = "openai_completions", **kwargs: Any) -> None:
        if isinstance(fn_completions, str) and fn_completions in COMPLETIONS:
            fn_completions = COMPLETIONS[fn_completions]
        super().__init__(*args, fn_completions=fn_completions, **kwargs)
        self.n_prompts = 0
        inner = self.fn_completions

        def counted(prompts: list[str], **decoding: Any) -> dict:
            self.n_prompts += len(prompts)
            return inner(prompts=prompts, **decoding)

        self.fn_completions = counted


class UalPairwiseAnnotator(PairwiseAnnotator):
    """alpaca_eval's ``PairwiseAnnotator`` (JSON cache, random output order, parsers) with ual's decoders."""

    @property
    def SingleAnnotator(self) -> type:
        return _SinglePairwiseAnnotator

    @property
    def n_judge_prompts(self) -> int:
        return sum(single.n_prompts for single in self.annotators.values())

    def _apply_cached_annotations(self, df_to_annotate: pd.DataFrame) -> pd.DataFrame:
        # alpaca_eval 0.6.6 calls .query on a missing cache when is_store_missing_annotations=False.
        if self.df_annotations is None:
            return df_to_annotate
        merged = super()._apply_cached_annotations(df_to_annotate)
        # Cached integer preferences (1 / 2) load as int64, and alpaca_eval then writes 1.5 (draws) into the
        # column, which pandas >= 3 refuses; preferences are floats in [1, 2] anyway.
        if self.annotation_key in merged:
            merged[self.annotation_key] = merged[self.annotation_key].astype(float)
        return merged


# --------------------------------------------------------------------------- references and judging


def load_references(reference: str, mirror: str | None, instructions: list[str]) -> list[dict]:
    """Reference outputs, checked: one per AlpacaEval instruction (``instructions``, the 805 in order).

    ``reference`` is a generator name (``ual.data.load_alpaca_eval_references``) or a model_outputs JSON path.
    """
    from ual.data import load_alpaca_eval_references, resolve_mirror

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


def judge(
    model_outputs: list[dict], references: list[dict], config_path: Path, cache_path: Path
) -> tuple[pd.DataFrame, int]:
    """Pairwise annotations (reference = output_1, model = output_2) and the number of judge prompts sent."""
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    annotator = UalPairwiseAnnotator(
        annotators_config=str(config_path),
        caching_path=str(cache_path),
        seed=0,
        is_store_missing_annotations=False,  # an unparsed reply is asked again next run, never cached
    )
    annotations = annotator.annotate_head2head(outputs_1=references, outputs_2=model_outputs)
    return pd.DataFrame(annotations), annotator.n_judge_prompts


def _length_controlled(annotations: pd.DataFrame, reference: str) -> dict[str, Any]:
    if reference != LC_BASELINE:
        return {
            "length_controlled_winrate": None,
            "lc_note": f"not applicable: LC is defined against the AlpacaEval 2 baseline {LC_BASELINE}",
        }
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


def evaluate(
    outputs: dict[str, str], records: list[dict], experiment: Any, out: Path, outputs_path: Path
) -> dict:
    """Judge the model's outputs against the references and return alpaca_eval's metrics."""
    from ual.data import load_records

    # absolute: alpaca_eval resolves a relative annotator config against its own package folder
    cfg, out_dir = experiment.evaluate, Path(out).resolve().parent
    eval_set = load_records("alpaca_eval", "eval", experiment.data.mirror)
    instructions = [r["instruction"] for r in eval_set]
    references = load_references(cfg.reference_outputs, experiment.data.mirror, instructions)
    by_instruction = {row["instruction"]: row for row in references}
    generator = json.loads(Path(outputs_path).read_text(encoding="utf-8"))[0].get("generator", "model")
    model_outputs = [
        {"instruction": r["instruction"], "output": outputs[r["id"]], "generator": generator} for r in records
    ]
    chosen_references = [
        {key: by_instruction[r["instruction"]][key] for key in ("instruction", "output")}
        | {"generator": by_instruction[r["instruction"]].get("generator", cfg.reference_outputs)}
        for r in records
    ]
    config_path, judge_info = resolve_annotator(cfg, out_dir)
    cache_path = out_dir / "annotations_cache" / f"{judge_info['annotator']}.json"
    annotations, n_prompts = judge(model_outputs, chosen_references, config_path, cache_path)
    unparsed = int(annotations["preference"].isna().sum()) if "preference" in annotations else len(records)
    if unparsed or len(annotations) != len(records):
        raise AlpacaEvalError(
            f"{outputs_path}: the judge '{judge_info['annotator']}' gave {unparsed} of {len(records)} "
            f"replies that its parser ({config_path}) could not read (raw replies in the log above); they "
            f"were not cached in {cache_path}, so a rerun asks again"
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
