"""AlpacaEval judges: alpaca_eval annotator configs, resolved and run through alpaca_eval's own pipeline.

Judges (``evaluate.judge``), each an alpaca_eval annotator config folder selected by name:
- ``alpaca_eval_gpt4`` (AlpacaEval 1; reference ``text_davinci_003``; the paper-profile default) and
  ``weighted_alpaca_eval_gpt4_turbo`` (AlpacaEval 2; reference ``gpt4_1106_preview``), or any other stock
  config of alpaca_eval 0.6.6 or a path to a config folder;
- any OpenAI-compatible endpoint: ``judge_base_url`` (+ ``judge_model``) is passed through alpaca_eval's
  client-config mechanism (a ``default: [{base_url}]`` YAML written beside the metrics); the key is read from
  the environment variable named by ``judge_api_key_env`` (default ``OPENAI_API_KEY``), never written; with
  ``judge_base_url`` set and ``judge_api_key_env`` null the server is keyless (``ual.judges.clients``);
- ``local`` = ``annotators/ual_local_judge_v1``: a local transformers model scored by the token
  probabilities of the two choices (``ual.judges.local``), for the offline tiny profile.

Orders (``judge_orders``, ``ual.judges.orders``): ``both`` shows every pair both ways through the same
annotator (alpaca_eval's randomisation off, annotator ``<name>__fixed_order``) and averages; ``random`` is
alpaca_eval's seeded order per instruction; null = random only for an unchanged stock judge on its own API.

The annotator config is materialised under the output folder (prompt path made absolute, judge overrides
filled in, the annotator renamed ``<config>__<judge>`` whenever an override changes the judge), so the
annotations record exactly what judged them. alpaca_eval caches annotations keyed by (instruction, output_1,
output_2, annotator) in ``annotations_cache/<annotator>.json`` beside the metrics (never inside the installed
package), so rerunning the same command makes no judge call; replies that cannot be parsed are not cached
(the task counts and reports them, ``evaluate.judge_on_unparsed``).

Inputs: ``EvaluateConfig`` (judge keys), model outputs and reference outputs as alpaca_eval rows.
Outputs: the resolved annotator config under the output folder, one row per pair (preferences per order,
second-shown share) and the number of judge prompts sent. Used by the AlpacaEval task
(``ual.tasks.alpacaeval``), which computes the metrics, and by the judge's bill (``ual.evaluate.estimate``);
nothing here imports ``ual.tasks`` or ``ual.evaluate`` (the import-linter layers in pyproject.toml).
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
from alpaca_eval.processors import RandomSwitchTwoColumnsProcessor

from ual.judge_errors import AlpacaEvalError
from ual.judges.local import COMPLETIONS
from ual.judges.orders import (
    SWITCH_COLUMN,
    both_orders_rows,
    combine_both_orders,
    combine_random_order,
    resolve_orders,
)

if TYPE_CHECKING:
    from ual.config import EvaluateConfig

logger = logging.getLogger(__name__)

__all__ = [
    "ANNOTATORS_DIR",
    "JUDGE_ALIASES",
    "STOCK_ANNOTATORS_DIR",
    "AlpacaEvalError",
    "UalPairwiseAnnotator",
    "annotator_entry",
    "find_annotator_config",
    "judge",
    "judge_orders",
    "resolve_annotator",
]

ANNOTATORS_DIR = Path(__file__).parent / "annotators"
STOCK_ANNOTATORS_DIR = Path(ae_constants.EVALUATORS_CONFIG_DIR)
JUDGE_ALIASES = {"local": "ual_local_judge_v1"}


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


def annotator_entry(cfg: EvaluateConfig) -> tuple[Path, str, dict[str, Any], dict[str, Any]]:
    """The judge's annotator config with ual's overrides, nothing written or checked against the environment:
    (source configs.yaml, annotator name, its entry, identity = the overrides that change the judge)."""
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
            identity["model_name"] = kwargs["model_name"] = cfg.judge_model  # the stock model keeps its name
        if cfg.judge_base_url:
            identity["base_url"] = cfg.judge_base_url
            # a chat endpoint, as in alpaca_eval's own vLLM-server configs
            kwargs.setdefault("requires_chatml", True)
    elif cfg.judge_model or cfg.judge_base_url:
        raise AlpacaEvalError(f"{source}: judge_model / judge_base_url apply to openai or local judges only")
    entry["completions_kwargs"] = kwargs
    annotator = name
    if identity and any(v is not None for v in identity.values()):
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
        annotator = f"{name}__{_slug(str(identity.get('model_name') or identity.get('base_url')))}-{digest}"
    return source, annotator, entry, identity


def judge_orders(cfg: EvaluateConfig, source: Path, entry: dict[str, Any], identity: dict[str, Any]) -> str:
    """``evaluate.judge_orders`` resolved (``ual.judges.orders``): null is random only for an unchanged stock
    alpaca_eval judge on its own API."""
    stock = source.parent.parent == STOCK_ANNOTATORS_DIR
    api = entry.get("fn_completions", "openai_completions") == "openai_completions"
    return resolve_orders(cfg.judge_orders, stock and api and not identity)


def _client_config(cfg: EvaluateConfig, out_dir: Path) -> tuple[Path, bool]:
    """alpaca_eval's client config for an OpenAI-compatible judge (the key stays in the environment);
    returns (its path, keyless). ``judge_api_key_env: null`` with a ``judge_base_url``: a keyless server."""
    client: dict[str, str] = {}
    if cfg.judge_base_url:
        client["base_url"] = cfg.judge_base_url
    keyless = cfg.judge_base_url is not None and cfg.judge_api_key_env is None
    if keyless:
        client["client_class"] = "ual.judges.clients.KeylessOpenAI"  # sends no Authorization header
    else:
        env = cfg.judge_api_key_env or "OPENAI_API_KEY"
        if not os.environ.get(env):
            raise AlpacaEvalError(f"judge '{cfg.judge}' calls an API: set the environment variable {env}")
        os.environ["OPENAI_API_KEY"] = os.environ[env]  # read by the OpenAI client; never written to disk
    path = out_dir / "openai_client_config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"default": [client]}))
    return path, keyless


def resolve_annotator(cfg: EvaluateConfig, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Write the judge's resolved annotator config under ``out_dir``; return (its path, judge description).

    With ``judge_orders`` both, output randomisation is off (``is_randomize_output_order: false``, ual shows
    each pair in both orders) and the annotator is named ``<name>__fixed_order``: its cached annotations are
    keyed by the order shown and never mix with randomised ones.
    """
    source, annotator, entry, identity = annotator_entry(cfg)
    orders = judge_orders(cfg, source, entry, identity)
    keyless = False
    if entry.get("fn_completions", "openai_completions") == "openai_completions":
        client_path, keyless = _client_config(cfg, out_dir)
        entry["completions_kwargs"]["client_config_path"] = str(client_path.resolve())
    if orders == "both":
        entry["is_randomize_output_order"] = False
        annotator = f"{annotator}__fixed_order"
    config_path = out_dir / "annotator_config" / annotator / "configs.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump({annotator: entry}, sort_keys=False))
    description = {
        "judge": cfg.judge,
        "annotator": annotator,
        "source_config": str(source),
        "fn_completions": entry.get("fn_completions", "openai_completions"),
        "judge_model": entry["completions_kwargs"].get("model_name"),
        "judge_orders": orders,
        "keyless": keyless,
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


def _pairs(model_outputs: list[dict], references: list[dict]) -> pd.DataFrame:
    """Reference-first pairs by instruction (alpaca_eval's head-to-head layout: reference = output_1)."""
    by_instruction = {row["instruction"]: row for row in model_outputs}
    return pd.DataFrame(
        [
            {
                "instruction": ref["instruction"],
                "output_1": ref["output"],
                "generator_1": ref.get("generator", "reference"),
                "output_2": by_instruction[ref["instruction"]]["output"],
                "generator_2": by_instruction[ref["instruction"]].get("generator", "model"),
            }
            for ref in references
        ]
    )


def _switched(annotator: UalPairwiseAnnotator, pairs: pd.DataFrame) -> pd.Series:
    """Where alpaca_eval's own random order shows the model first: its RandomSwitchTwoColumnsProcessor, asked
    for the same seeded draw it makes while annotating."""
    for single in annotator.annotators.values():
        for processor in single.processors:
            if isinstance(processor, RandomSwitchTwoColumnsProcessor):
                flags = processor.preprocess(pairs)[SWITCH_COLUMN]
                return pd.Series(flags.to_numpy(), index=pairs["instruction"])
    raise AlpacaEvalError(f"{annotator.annotators_config}: random order asked, but the annotator has none")


def judge(
    model_outputs: list[dict], references: list[dict], config_path: Path, cache_path: Path, orders: str
) -> tuple[pd.DataFrame, int]:
    """One row per pair (reference = output_1, model = output_2; ``ual.judges.orders``) in ``orders`` (both:
    each pair shown both ways, through alpaca_eval's annotator with its cache) and the judge prompts sent."""
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    annotator = UalPairwiseAnnotator(
        annotators_config=str(config_path),
        caching_path=str(cache_path),
        seed=0,
        is_store_missing_annotations=False,  # an unparsed reply is asked again next run, never cached
    )
    pairs = _pairs(model_outputs, references)
    if orders == "both":
        annotations = pd.DataFrame(annotator.annotate_pairs(both_orders_rows(pairs)))
        combined = combine_both_orders(pairs, annotations)
    else:
        annotations = pd.DataFrame(annotator.annotate_pairs(pairs))
        combined = combine_random_order(pairs, annotations, _switched(annotator, pairs))
    return combined, annotator.n_judge_prompts
