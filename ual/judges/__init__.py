"""AlpacaEval judges: alpaca_eval annotator configs, resolved and run through alpaca_eval's own pipeline.

Judges (``evaluate.judge``), each an alpaca_eval annotator config folder selected by name:
- ``alpaca_eval_gpt4`` (AlpacaEval 1; reference ``text_davinci_003``; the paper-profile default) and
  ``weighted_alpaca_eval_gpt4_turbo`` (AlpacaEval 2; reference ``gpt4_1106_preview``), or any other stock
  config of alpaca_eval 0.6.6 or a path to a config folder;
- any OpenAI-compatible endpoint: ``judge_base_url`` (+ ``judge_model``) is passed through alpaca_eval's
  client-config mechanism (a ``default: [{base_url}]`` YAML written beside the metrics); the key is read from
  the environment variable named by ``judge_api_key_env`` (default ``OPENAI_API_KEY``), never written;
- ``local`` = ``annotators/ual_local_judge_v1``: a local transformers model scored by the token
  probabilities of the two choices (``ual.judges.local``), for the offline tiny profile.

The annotator config is materialised under the output folder (prompt path made absolute, judge overrides
filled in, the annotator renamed ``<config>__<judge>`` whenever an override changes the judge), so the
annotations record exactly what judged them. alpaca_eval caches annotations keyed by (instruction, output_1,
output_2, annotator) in ``annotations_cache/<annotator>.json`` beside the metrics (never inside the installed
package), so rerunning the same command makes no judge call; replies that cannot be parsed are not cached
(the caller fails the run with a count).

Inputs: ``EvaluateConfig`` (judge keys), model outputs and reference outputs as alpaca_eval rows.
Outputs: the resolved annotator config under the output folder, alpaca_eval's annotations (a DataFrame) and
the number of judge prompts sent. Used by the AlpacaEval task (``ual.tasks.alpacaeval``), which computes the
metrics; nothing here imports ``ual.tasks`` or ``ual.evaluate``.

Changelog: v1 - initial (was ``ual.evaluate.alpacaeval``; annotator folder moved from
``ual/evaluate/annotators``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml
from alpaca_eval import constants as ae_constants
from alpaca_eval.annotators.pairwise_evaluator import PairwiseAnnotator, SinglePairwiseAnnotator

from ual.judges.local import COMPLETIONS

if TYPE_CHECKING:
    from ual.config import EvaluateConfig

logger = logging.getLogger(__name__)

__all__ = [
    "ANNOTATORS_DIR",
    "JUDGE_ALIASES",
    "STOCK_ANNOTATORS_DIR",
    "AlpacaEvalError",
    "UalPairwiseAnnotator",
    "find_annotator_config",
    "judge",
    "resolve_annotator",
]

ANNOTATORS_DIR = Path(__file__).parent / "annotators"
STOCK_ANNOTATORS_DIR = Path(ae_constants.EVALUATORS_CONFIG_DIR)
JUDGE_ALIASES = {"local": "ual_local_judge_v1"}


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


# --------------------------------------------------------------------------- judging


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
