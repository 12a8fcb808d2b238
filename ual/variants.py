"""Training variants: the one place where a variant name is built and parsed, and where the ablation runs.

A variant is one trained model of the grid: a method of ``ual.methods.METHODS`` at the experiment's
``epsilon.eps_max`` (named by the method: ``sft``, ``ls``, ``ual``, ``ual_shuffled``, ``ual_dataset``), or the
swept method (``ual.methods.swept_method``: UAL) at another eps_max of the ablation sweep
(``epsilon.ablation_eps_max``), named ``<method>_epsmax<eps_max:g>`` (``ual_epsmax0.3``).
The name is a path component of every result of the variant
(``results/<exp>/seed<s>/{train,generate,evaluate}/<scenario>/<variant>/...``) and the ``variant`` of its
results' ``identity`` (``ual.identity``); the workflow (``workflow/rules/common.smk``), the stages and the
report turn names into variants and back through ``Variant`` only. ``trained_variants`` is the grid the
workflow trains.

The epsilon file a variant trains with is ``results/<exp>/epsilon/<scenario>/<epsilon name>.jsonl``, named by
``Variant.epsilon_name(seed)``: the variant's name, and ``.seed<s>`` after it when its epsilon depends on the
training seed (a ``seeded`` method: ``ual_shuffled``, permuted anew per seed: ``ual_shuffled.seed1``), so that
one file serves every seed of the other variants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ual import methods
from ual.methods import METHODS, Method, get_method, swept_method
from ual.scenarios import ablation_scenario

__all__ = [
    "ABLATION_PREFIX",
    "EPSILON_NAME_PATTERN",
    "VARIANT_PATTERN",
    "Variant",
    "ablation_prefix",
    "epsilon_name_pattern",
    "ablation_variants",
    "sweep_label",
    "trained_variants",
    "ual_at",
    "variant_pattern",
]

SWEEP_INFIX = "_epsmax"  # <swept method>_epsmax<eps_max>
SEED_SUFFIX = ".seed"


def ablation_prefix() -> str:
    """The prefix of the sweep's variant names: ``ual_epsmax``."""
    return swept_method().name + SWEEP_INFIX


def variant_pattern() -> str:
    """A regular expression of variant names (the workflow's wildcard constraint)."""
    return "|".join(map(re.escape, METHODS)) + rf"|{re.escape(ablation_prefix())}[0-9.]+"


def epsilon_name_pattern() -> str:
    """A regular expression of epsilon file names: a variant name, ``.seed<s>`` after it when seeded."""
    return rf"(?:{variant_pattern()})(?:{re.escape(SEED_SUFFIX)}[0-9]+)?"


ABLATION_PREFIX = ablation_prefix()
VARIANT_PATTERN = variant_pattern()
EPSILON_NAME_PATTERN = epsilon_name_pattern()


@dataclass(frozen=True)
class Variant:
    """A method, and the eps_max it is trained at when that is not the experiment's (ablation sweep only).

    >>> Variant("ual", 0.3).name, Variant.parse("ual_epsmax0.3"), Variant.parse("sft").name
    ('ual_epsmax0.3', Variant(method='ual', eps_max=0.3), 'sft')
    """

    method: str
    eps_max: float | None = None  # None: the experiment's epsilon.eps_max

    def __post_init__(self) -> None:
        get_method(self.method)  # an unknown method is an error listing the known ones
        if self.eps_max is not None:
            if self.method != swept_method().name:
                raise ValueError(f"only {swept_method().name} is swept over eps_max, not '{self.method}'")
            if not 0.0 <= self.eps_max < 1.0 or float(f"{self.eps_max:g}") != self.eps_max:
                raise ValueError(f"ablation eps_max {self.eps_max!r} must be in [0, 1) and exact in 6 digits")

    @property
    def name(self) -> str:
        """The variant's name in paths, wildcards and metrics."""
        return self.method if self.eps_max is None else f"{ablation_prefix()}{self.eps_max:g}"

    @classmethod
    def parse(cls, name: str) -> Variant:
        """The variant of a name built by ``Variant.name``; anything else is a ValueError naming it."""
        if name in METHODS:
            return cls(name)
        prefix = ablation_prefix()
        value = name.removeprefix(prefix)
        if value == name or not re.fullmatch(r"[0-9.]+", value):
            raise ValueError(f"'{name}' is not a variant name (a method or {prefix}<eps_max>)")
        try:
            variant = cls(swept_method().name, float(value))
        except ValueError:
            raise ValueError(f"'{name}' is not a variant name (bad eps_max '{value}')") from None
        if variant.name != name:
            raise ValueError(f"'{name}' is not a variant name; it is spelled '{variant.name}'")
        return variant

    @property
    def row(self) -> Method:
        """The ``ual.methods`` row of the variant's method."""
        return get_method(self.method)

    @property
    def seeded(self) -> bool:
        """Whether the variant's epsilon depends on the training seed (its method's ``seeded``)."""
        return self.row.seeded

    @property
    def label(self) -> str:
        """Its label in tables and legends: the method's, or ``UAL (eps_max = 0.3)`` for a sweep point."""
        return self.row.label if self.eps_max is None else sweep_label(self.eps_max)

    def epsilon_name(self, seed: int) -> str:
        """The stem of the epsilon file that training seed ``seed`` of this variant reads.

        >>> Variant("ual").epsilon_name(1), Variant("ual_shuffled").epsilon_name(1)
        ('ual', 'ual_shuffled.seed1')
        """
        return f"{self.name}{SEED_SUFFIX}{seed}" if self.seeded else self.name

    @classmethod
    def parse_epsilon_name(cls, name: str) -> tuple[Variant, int | None]:
        """(variant, seed) of a name built by ``epsilon_name``; seed None for a variant that uses none.

        >>> Variant.parse_epsilon_name("ual_shuffled.seed2"), Variant.parse_epsilon_name("ls")
        ((Variant(method='ual_shuffled', eps_max=None), 2), (Variant(method='ls', eps_max=None), None))
        """
        stem, _, seed = name.partition(SEED_SUFFIX)
        variant = cls.parse(stem)
        parsed = int(seed) if seed.isdigit() else None
        if (variant.seeded and parsed is None) or name != variant.epsilon_name(parsed or 0):
            expected = variant.epsilon_name(0).replace(f"{SEED_SUFFIX}0", f"{SEED_SUFFIX}<seed>")
            raise ValueError(
                f"'{name}' is not an epsilon file name; variant {variant.name}'s is '{expected}'"
            )
        return variant, parsed


def sweep_label(eps_max: float) -> str:
    """The label of the swept method at ``eps_max`` in tables and legends: ``UAL (eps_max = 0.3)``."""
    return f"{swept_method().label} (eps_max = {eps_max:g})"


def ual_at(eps_max: float, default_eps_max: float) -> Variant:
    """The swept method (UAL) trained at ``eps_max``: its main run at the experiment's eps_max, else a sweep
    point."""
    name = swept_method().name
    return Variant(name) if eps_max == default_eps_max else Variant(name, eps_max)


def ablation_variants(trained: list[str], eps_max: float, sweep: list[float]) -> list[Variant]:
    """The ablation's extra variants: the controls that are trained (``ual.methods.ABLATION_CONTROLS``:
    ``ual_shuffled``, ``ual_dataset``), and UAL at each other eps_max swept."""
    controls = [Variant(method) for method in methods.ABLATION_CONTROLS if method in trained]
    return controls + [Variant(swept_method().name, value) for value in sweep if value != eps_max]


def trained_variants(
    scenarios: list[str], trained: list[str], eps_max: float, sweep: list[float]
) -> list[tuple[str, Variant]]:
    """(scenario, variant) pairs that are trained (per seed): the main methods in every scenario, the
    ablation's variants once, on the ablation scenario. The workflow and the judge's --estimate use it."""
    main = [method for method in methods.MAIN_TABLE_METHODS if method in trained]
    pairs = [(scenario, Variant(method)) for scenario in scenarios for method in main]
    return pairs + [(ablation_scenario(scenarios), v) for v in ablation_variants(trained, eps_max, sweep)]
