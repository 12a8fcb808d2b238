"""Training methods: one row each, the only place a method is defined.

A method is what a training run does to epsilon: its name (experiment files, ``python -m ual.train``,
variant names), what it trains with, made from UAL's per-sample epsilon (a ``ual.epsilon.METHOD_MAPPINGS`` name),
whether that epsilon depends on the training seed, whether it is one of the main table's methods (trained in
every scenario) or an ablation control (trained on the ablation scenario only), and how tables and figures
label and draw it. Every other module reads these rows; none spells a method's properties again.

Adding a method: one row in ``METHODS`` (and, if it needs a new mapping, one function in
``ual.epsilon.METHOD_MAPPINGS``), plus its tests. A control names the method it controls (``control_of``):
the analysis and the report then give that method minus the control, paired (``CONTROL_PAIRS``). This module
imports nothing of ``ual``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["METHODS", "MAIN_TABLE_METHODS", "ABLATION_CONTROLS", "CONTROL_PAIRS", "Method", "get_method",
           "swept_method"]


@dataclass(frozen=True)
class Method:
    """One training method (a row of ``METHODS``)."""

    name: str  # id in experiment files (train.methods), CLIs, variant names and result identities
    mapping: str  # what it trains with, made from UAL's eps (a name of ual.epsilon.METHOD_MAPPINGS)
    seeded: bool  # its epsilon depends on the training seed (a file per seed: ual.variants.epsilon_name)
    main_table: bool  # trained in every scenario and shown in table_main; else an ablation control
    label: str  # short label (table_main, table_crosscheck, table_calibration, legends)
    ablation_label: str  # what it is, spelled out for table_ablation
    linestyle: Any = None  # matplotlib linestyle of its reference line in fig_ablation (None: drawn as a curve)
    swept: bool = False  # trained at every eps_max of the ablation sweep (variants <name>_epsmax<v>)
    uses_eps_max: bool = True  # its epsilon depends on eps_max (table_ablation's eps_max column; SFT: 0)
    control_of: str | None = None  # the method it is a control of: the analysis and report give that one
    # minus this one, paired (UAL - LS, UAL - shuffled, UAL - per-dataset: the paper's questions)

    @property
    def reference_line(self) -> bool:
        """Whether fig_ablation draws it as a horizontal reference line and table_ablation lists it as a
        row of its own (every method but the swept one, which is the curve and the sweep rows)."""
        return not self.swept


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("sft", "zero", False, True, "SFT", "SFT (eps = 0)", "--", uses_eps_max=False),
        Method("ls", "constant", False, True, "LS (constant eps)", "LS (constant = mean UAL eps)", ":",
               control_of="ual"),
        Method("ual", "per_sample", False, True, "UAL", "UAL", swept=True),
        Method("ual_shuffled", "shuffled", True, False, "UAL, shuffled eps", "UAL, shuffled eps", "-.",
               control_of="ual"),
        Method("ual_dataset", "per_dataset", False, False, "UAL, per-dataset mean eps",
               "UAL, per-dataset eps (mean UAL eps of its dataset)", (0, (5, 1, 1, 1)), control_of="ual"),
    )
}
MAIN_TABLE_METHODS: tuple[str, ...] = tuple(name for name, m in METHODS.items() if m.main_table)
ABLATION_CONTROLS: tuple[str, ...] = tuple(name for name, m in METHODS.items() if not m.main_table)
# (method, control) pairs whose paired difference method - control the analysis and the report give
CONTROL_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (m.control_of, name) for name, m in METHODS.items() if m.control_of is not None
)


def get_method(name: str) -> Method:
    """The row of method ``name``; an unknown name is a ValueError listing the known methods."""
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'; known methods: {', '.join(METHODS)}")
    return METHODS[name]


def swept_method() -> Method:
    """The method the ablation trains at every eps_max of ``epsilon.ablation_eps_max`` (UAL): the one row
    with ``swept``."""
    swept = [method for method in METHODS.values() if method.swept]
    if len(swept) != 1:
        raise ValueError(f"exactly one method must be swept over eps_max; got {[m.name for m in swept]}")
    return swept[0]
