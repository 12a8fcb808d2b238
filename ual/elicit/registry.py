"""The elicitor backends by name: ``ELICITORS[(cfg.backend, cfg.method)](cfg) -> Elicitor``.

Adding a backend (or a method for one): a module ``ual/elicit/<name>.py`` with a class following
``ual.elicit.core.Elicitor`` and a ``build(cfg)`` factory, plus one line here (and the name in
``ElicitConfig.backend`` / ``method``). Backends are imported when built, so importing ``ual.elicit`` does
not import torch or openai.
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


ELICITORS: dict[tuple[str, str], Callable[[ElicitConfig], Elicitor]] = {
    ("hf", "verbalized"): _lazy("ual.elicit.hf"),
    ("openai", "verbalized"): _lazy("ual.elicit.openai"),
    ("hf", "entropy"): _lazy("ual.elicit.entropy"),
}


def build_elicitor(cfg: ElicitConfig) -> Elicitor:
    """The registered elicitor of ``cfg`` (backend and method)."""
    if (cfg.backend, cfg.method) not in ELICITORS:
        raise ValueError(
            f"no elicitor for backend '{cfg.backend}' with source '{cfg.method}'; "
            f"registered: {sorted(ELICITORS)}"
        )
    return ELICITORS[(cfg.backend, cfg.method)](cfg)
