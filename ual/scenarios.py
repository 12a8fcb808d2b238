"""Training scenarios: the names and the data slices each is made of (a leaf: imports nothing of ``ual``).

``high`` (open-ended instruction data), ``low`` (math with one answer) and ``mixed`` (their union, the paper's
headline setting). The ablation (eps_max sweep, controls) runs on one scenario: ``mixed`` where trained.
"""

from __future__ import annotations

__all__ = ["SCENARIOS", "SCENARIO_SLICES", "ablation_scenario"]

SCENARIOS = ("high", "low", "mixed")
# The data slices (DataConfig.high / .low) a scenario's training set is made of, in order.
SCENARIO_SLICES: dict[str, tuple[str, ...]] = {"high": ("high",), "low": ("low",), "mixed": ("high", "low")}


def ablation_scenario(scenarios: list[str] | tuple[str, ...]) -> str:
    """The scenario the ablation runs on: ``mixed`` (the paper's headline setting), else the first one."""
    return "mixed" if "mixed" in scenarios else scenarios[0]
