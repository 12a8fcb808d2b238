"""The elicitor backends by name: ``ELICITORS[cfg.backend](cfg) -> Elicitor``.

Adding a backend: a module ``ual/elicit/<name>.py`` with a class following ``ual.elicit.core.Elicitor``
and a ``build(cfg)`` factory, plus one line here (and the name in ``ElicitConfig.backend``). Backends are
imported when built, so importing ``ual.elicit`` does not import torch or openai.

Changelog: v1 - initial.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ual.config import ElicitConfig
from ual.elicit.core import Elicitor

__all__ = ["ELICITORS", "build_elicitor"]


def _lazy(module: str) -> Callable[[ElicitConfig], Elicitor]:
    def build(cfg: ElicitConfig) -> Elicitor:
        return importlib.import_module(module).build(cfg)

    build.__qualname__ = f"build[{module}]"
    return build


ELICITORS: dict[str, Callable[[ElicitConfig], Elicitor]] = {
    "hf": _lazy("ual.elicit.hf"),
    "openai": _lazy("ual.elicit.openai"),
}


def build_elicitor(cfg: ElicitConfig) -> Elicitor:
    """The registered backend of ``cfg``."""
    if cfg.backend not in ELICITORS:
        raise ValueError(f"unknown elicitor backend '{cfg.backend}'; registered: {sorted(ELICITORS)}")
    return ELICITORS[cfg.backend](cfg)
