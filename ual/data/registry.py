"""Dataset registry: every (dataset, split) has exactly one source, a manifest file or a pinned hub dataset.

A split the mirror holds is read from the mirror only (its file is an entry of ``ual/data/manifest.json``, a
byte-identical copy of a public GitHub file at a pinned commit), so every machine computes from the same
bytes; the Hugging Face hub is used only for what the mirror does not hold (Alpaca 52k, Alpaca-GPT4 52k,
MetaMathQA, MATH train), each pinned to a dataset commit.

Why the revision lives here and not in the experiment files: it is a fact about what ``alpaca_gpt4/train``
*is*. Record ids, elicitation caches and tables of every experiment that names the dataset depend on it, so
two experiments naming the same dataset must read the same bytes; one pin per dataset keeps that true. A
source with ``hub_revision=None`` is refused when loaded (never "latest").

The pins below were not checked against the hub from the machines that wrote them (no internet there); each
is a dataset commit found in public code that loads the dataset (Hugging Face cache snapshot folders, pinned
``revision=`` arguments), cited in the comment. ``python -m ual.data show --dataset X --split Y`` on a
connected machine loads exactly that commit.

Extension point: add a ``Source`` to ``DATASETS`` (a manifest file or a pinned hub id, and a row normaliser
from ``ual.data.normalise``); add reference outputs of another AlpacaEval generator to ``REFERENCE_FILES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ual.data import normalise

__all__ = ["DATASETS", "MATH_SUBJECTS", "REFERENCE_COLUMNS", "REFERENCE_FILES", "Source"]


@dataclass(frozen=True)
class Source:
    """Where one split lives: a mirror file (a manifest entry) or a hub dataset at a pinned revision."""

    normalise: Callable[[str, dict], dict]
    mirror_file: str | None = None
    hub_id: str | None = None
    hub_revision: str | None = None  # a dataset commit (40 hex digits); None is refused when loading
    hub_config: str | None = None
    hub_split: str = "train"
    substitute: str | None = None  # what the tiny profile uses instead, for the error message

    def __post_init__(self) -> None:
        if (self.mirror_file is None) == (self.hub_id is None):
            raise ValueError("a Source has exactly one of mirror_file and hub_id")

    @property
    def hub_label(self) -> str:
        """``id (config c) @ revision``, for messages and provenance."""
        config = f" (config {self.hub_config})" if self.hub_config else ""
        return f"{self.hub_id}{config} @ {self.hub_revision or 'unpinned'}"


_SUB_HIGH = "alpaca_gpt4_demo (mirror instruct/alpaca_en_demo.json, 999 Alpaca-GPT4-style records)"
_SUB_LOW = "gsm8k train (mirror gsm8k/train.jsonl, rewritten to end with 'The answer is: X')"

DATASETS: dict[str, dict[str, Source]] = {
    "alpaca_gpt4": {
        "train": Source(
            normalise.alpaca,
            hub_id="vicgalle/alpaca-gpt4",
            # pinned in the revision map of a public training script that loads this dataset
            hub_revision="f7e3ded725cb81e8e564e32feb12860f376f2b51",
            substitute=_SUB_HIGH,
        )
    },
    "alpaca": {
        "train": Source(
            normalise.alpaca,
            hub_id="tatsu-lab/alpaca",
            # the snapshot folder datasets--tatsu-lab--alpaca/snapshots/<this> in several public scripts
            hub_revision="dce01c9b08f87459cf36a430d809084718273017",
            substitute=_SUB_HIGH,
        )
    },
    # LLaMA-Factory's demo file exists only as a repository file (no hub copy).
    "alpaca_gpt4_demo": {"train": Source(normalise.alpaca, mirror_file="instruct/alpaca_en_demo.json")},
    "metamathqa": {
        "train": Source(
            normalise.metamathqa,
            hub_id="meta-math/MetaMathQA",
            # snapshot folder of several public scripts; a public dataset card gives it as main's sha
            hub_revision="aa4f34d3d2d3231299b5b03d9b3e5a20da45aa18",
            substitute=_SUB_LOW,
        )
    },
    "gsm8k": {
        "train": Source(normalise.gsm8k, mirror_file="gsm8k/train.jsonl"),
        "test": Source(normalise.gsm8k, mirror_file="gsm8k/test.jsonl"),
    },
    "math": {
        "train": Source(
            normalise.hendrycks_math,
            hub_id="EleutherAI/hendrycks_math",
            # pinned as revision= in several public evaluation and data-prep scripts
            hub_revision="21a5633873b6a120296cce3e2df9d5550074f4a3",
            hub_config="all",
            substitute=_SUB_LOW,
        ),
        "test": Source(normalise.hendrycks_math, mirror_file="math/test.jsonl"),
        "math500": Source(normalise.hendrycks_math, mirror_file="math/math500.jsonl"),
    },
    "alpaca_eval": {
        "eval": Source(
            normalise.alpaca_eval, mirror_file="alpaca_eval/results/text_davinci_003/model_outputs.json"
        )
    },
}
MATH_SUBJECTS = (  # EleutherAI/hendrycks_math has one config per subject; "all" concatenates them
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
# AlpacaEval reference sets by name (``evaluate.reference_outputs``), mirror files: alpaca_eval's
# model_outputs format, or an annotations file whose ``output_1`` column holds the reference
# (``REFERENCE_COLUMNS``).
REFERENCE_FILES: dict[str, str] = {
    "text_davinci_003": "alpaca_eval/results/text_davinci_003/model_outputs.json",  # AlpacaEval 1
    # the text-davinci-003 outputs judged in alpaca_eval's published AlpacaEval 1 annotations (other
    # generations than the file above)
    "text_davinci_003_gpt4_annotations": "alpaca_eval/results/gpt4/alpaca_eval_gpt4/annotations.json",
    "gpt4_1106_preview": "alpaca_eval/results/gpt4_1106_preview/model_outputs.json",  # AlpacaEval 2
}
REFERENCE_COLUMNS: dict[str, str] = {"text_davinci_003_gpt4_annotations": "output_1"}  # default: "output"
