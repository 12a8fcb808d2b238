"""ual: reproducibility package for "Uncertainty Aware Learning for Language Model Alignment" (ACL 2024).

Stages, each a module run as ``python -m ual.<stage>``: elicit (uncertainty per training sample),
smoothing (uncertainty -> epsilon), train (SFT / LS / UAL), generate and evaluate (AlpacaEval, GSM8K,
MATH), analysis (token clustering), report (paper_tables/ and figures/). See README.md and docs/.

The library surface, for use in your own training (docs/use-in-your-training.md)::

    from ual import elicit_dataset, map_epsilon, UALSFTTrainer
    from ual import label_smoothed_nll_lean, label_smoothed_nll_reference, count_response_tokens

- ``elicit_dataset``: score any dataset's rows (``ual.elicit.dataset``); ``python -m ual.elicit --input``;
- ``score_to_epsilon`` / ``map_epsilon``: uncertainty -> epsilon (``ual.smoothing``);
- the loss functions (``ual.losses``): per-sample (or per-token) label-smoothed cross-entropy, from logits or,
  without materialising them, from the last hidden states and the LM head;
- ``UALSFTTrainer``: TRL's ``SFTTrainer`` with that loss and a per-sample ``epsilon`` column (``ual.trl``;
  needs the ``trl`` extra: ``pip install -e ".[trl]"``).

Every name is imported on first access, so ``import ual`` stays light and TRL stays optional.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SURFACE = {
    "count_response_tokens": "ual.losses",
    "label_smoothed_nll_lean": "ual.losses",
    "label_smoothed_nll_linear_ce": "ual.losses",
    "label_smoothed_nll_reference": "ual.losses",
    "map_epsilon": "ual.epsilon",
    "score_to_epsilon": "ual.epsilon",
    "elicit_dataset": "ual.elicit.dataset",
    "UALSFTTrainer": "ual.trl",
}
__all__ = sorted(_SURFACE)

TRL_EXTRA_ERROR = (
    "ual.UALSFTTrainer needs TRL: install the trl extra, pip install -e \".[trl]\" "
    "(or pip install trl==1.16.0)"
)


def __getattr__(name: str) -> Any:
    if name not in _SURFACE:
        raise AttributeError(f"module 'ual' has no attribute {name!r}")
    if name == "UALSFTTrainer":
        try:
            import trl  # noqa: F401
        except ImportError as exc:
            raise ImportError(TRL_EXTRA_ERROR) from exc
    value = getattr(importlib.import_module(_SURFACE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_SURFACE])
