"""Datasets: every training and evaluation set normalised to one record schema, from one pinned source each.

Record (a plain dict): ``id`` (stable content hash), ``dataset``, ``instruction``, ``input`` (may be ""),
``output``, ``answer`` (the gold final answer of math sets as a string, else None).

Sources (``registry``): a split the data mirror holds is read from the mirror folder only, where each file is
a byte-identical copy of a public GitHub file at a pinned commit (``manifest.json``); the rest (Alpaca 52k,
Alpaca-GPT4 52k, MetaMathQA, MATH train, which the paper profiles train on) come from the Hugging Face hub at
pinned dataset revisions. The mirror folder (``resolve_mirror``): ``data.mirror``, else env
``UAL_DATA_MIRROR``, else ``~/.cache/ual/data``, which ``python -m ual.data fetch`` fills from the upstream
repositories (``fetch``). The tiny profile substitutes ``alpaca_gpt4_demo`` (999 Alpaca-GPT4-style rows) for
the high-entropy set and ``gsm8k`` train, rewritten MetaMath-style, for MetaMathQA.

Modules: ``normalise`` (row -> record, pure), ``registry`` (DATASETS, REFERENCE_FILES), ``manifest`` (the
manifest, the mirror folder), ``load`` (files -> records, subsampling, scenarios, source provenance),
``fetch`` (download and verify), ``__main__`` (``python -m ual.data show|fetch``).

    python -m ual.data show --dataset gsm8k --split train --size 3 --seed 0
    python -m ual.fetch --experiment experiments/tiny.yaml   # the files one experiment reads
"""

from ual.data.load import (
    DataError,
    build_scenario,
    file_record,
    load_alpaca_eval_references,
    load_records,
    split_record,
    subsample,
)
from ual.data.manifest import MANIFEST, ManifestFile, default_cache_dir, resolve_mirror
from ual.data.normalise import RECORD_KEYS, extract_boxed, record_id, rewrite_gsm8k_solution
from ual.data.registry import DATASETS, REFERENCE_FILES, Source

__all__ = [
    "DATASETS",
    "MANIFEST",
    "RECORD_KEYS",
    "REFERENCE_FILES",
    "DataError",
    "ManifestFile",
    "Source",
    "build_scenario",
    "default_cache_dir",
    "extract_boxed",
    "file_record",
    "load_alpaca_eval_references",
    "load_records",
    "record_id",
    "resolve_mirror",
    "rewrite_gsm8k_solution",
    "split_record",
    "subsample",
]
