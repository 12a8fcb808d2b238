"""Training variants: the one place where a variant name is built and parsed, and where the ablation runs.

A variant is one trained model of the grid: a method of ``ual.methods.METHODS`` at the experiment's
``epsilon.eps_max`` (named by the method: ``sft``, ``ls``, ``ual``, ``ual_shuffled``, ``ual_dataset``), or UAL
at another eps_max of the ablation sweep (``epsilon.ablation_eps_max``), named ``ual_epsmax<eps_max:g>``
(``ual_epsmax0.3``).
The name is a path component of every result of the variant
(``results/<exp>/seed<s>/{train,generate,evaluate}/<scenario>/<variant>/...``) and the ``method`` recorded in
its metrics; the workflow (``workflow/rules/common.smk``), the report (``ual.report``) and nothing else turn
names into variants and back, through ``Variant``. ``trained_variants`` is the grid the workflow trains.

The epsilon file a variant trains with is ``results/<exp>/epsilon/<scenario>/<epsilon name>.jsonl``, named by
``Variant.epsilon_name(seed)``: the variant's name, and ``.seed<s>`` after it when its epsilon depends on the
training seed (``ual_shuffled``, permuted anew per seed: ``ual_shuffled.seed1``), so that one file serves
every seed of the other variants.

Changelog: v1 - initial (replaces four spellings of ``ual_epsmax{v:g}``). v2 - epsilon file names
(``epsilon_name``, ``parse_epsilon_name``, ``EPSILON_NAME_PATTERN``). v3 - ``trained_variants`` (was in
``common.smk``; also counts the judged models of ``python -m ual.evaluate --estimate``). v4 - the
``ual_dataset`` control.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ual.methods import MAIN_TABLE_METHODS, METHODS

__all__ = [
    "ABLATION_PREFIX",
    "EPSILON_NAME_PATTERN",
    "VARIANT_PATTERN",
    "Variant",
    "ablation_scenario",
    "ablation_variants",
    "trained_variants",
    "ual_at",
]

ABLATION_PREFIX = "ual_epsmax"
# A regular expression of variant names (the workflow's wildcard constraint).
VARIANT_PATTERN = "|".join(METHODS) + rf"|{ABLATION_PREFIX}[0-9.]+"
SEED_SUFFIX = ".seed"
# ...and of epsilon file names (a variant name, ``.seed<s>`` after it when the epsilon depends on the seed).
EPSILON_NAME_PATTERN = rf"(?:{VARIANT_PATTERN})(?:{re.escape(SEED_SUFFIX)}[0-9]+)?"


@dataclass(frozen=True)
class Variant:
    """A method, and the eps_max it is trained at when that is not the experiment's (ablation sweep only).

    >>> Variant("ual", 0.3).name, Variant.parse("ual_epsmax0.3"), Variant.parse("sft").name
    ('ual_epsmax0.3', Variant(method='ual', eps_max=0.3), 'sft')
    """

    method: str
    eps_max: float | None = None  # None: the experiment's epsilon.eps_max

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method '{self.method}'; expected one of {', '.join(METHODS)}")
        if self.eps_max is not None:
            if self.method != "ual":
                raise ValueError(f"only ual is swept over eps_max, not '{self.method}'")
            if not 0.0 <= self.eps_max < 1.0 or float(f"{self.eps_max:g}") != self.eps_max:
                raise ValueError(f"ablation eps_max {self.eps_max!r} must be in [0, 1) and exact in 6 digits")

    @property
    def name(self) -> str:
        """The variant's name in paths, wildcards and metrics."""
        return self.method if self.eps_max is None else f"{ABLATION_PREFIX}{self.eps_max:g}"

    @classmethod
    def parse(cls, name: str) -> Variant:
        """The variant of a name built by ``Variant.name``; anything else is a ValueError naming it."""
        if name in METHODS:
            return cls(name)
        value = name.removeprefix(ABLATION_PREFIX)
        if value == name or not re.fullmatch(r"[0-9.]+", value):
            raise ValueError(f"'{name}' is not a variant name (a method or {ABLATION_PREFIX}<eps_max>)")
        try:
            variant = cls("ual", float(value))
        except ValueError:
            raise ValueError(f"'{name}' is not a variant name (bad eps_max '{value}')") from None
        if variant.name != name:
            raise ValueError(f"'{name}' is not a variant name; it is spelled '{variant.name}'")
        return variant

    @property
    def seeded(self) -> bool:
        """Whether the variant's epsilon depends on the training seed (its ``ual.smoothing`` mapping is one of
        ``SEEDED_MAPPINGS``: ``ual_shuffled``)."""
        from ual.smoothing import METHOD_MAPPINGS, SEEDED_MAPPINGS

        return METHOD_MAPPINGS[self.method] in SEEDED_MAPPINGS

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


def ual_at(eps_max: float, default_eps_max: float) -> Variant:
    """UAL trained at ``eps_max``: the main ``ual`` run at the experiment's eps_max, else a sweep point."""
    return Variant("ual") if eps_max == default_eps_max else Variant("ual", eps_max)


def ablation_scenario(scenarios: list[str]) -> str:
    """The scenario the ablation runs on: ``mixed`` (the paper's headline setting), else the first one."""
    return "mixed" if "mixed" in scenarios else scenarios[0]


ABLATION_CONTROLS = ("ual_shuffled", "ual_dataset")  # trained on the ablation scenario only


def ablation_variants(methods: list[str], eps_max: float, sweep: list[float]) -> list[Variant]:
    """The ablation's extra variants: the controls that are trained (``ual_shuffled``, ``ual_dataset``), and
    UAL at each other eps_max swept."""
    controls = [Variant(method) for method in ABLATION_CONTROLS if method in methods]
    return controls + [Variant("ual", value) for value in sweep if value != eps_max]


def trained_variants(
    scenarios: list[str], methods: list[str], eps_max: float, sweep: list[float]
) -> list[tuple[str, Variant]]:
    """(scenario, variant) pairs that are trained (per seed): the main methods in every scenario, the
    ablation's variants once, on the ablation scenario. The workflow and the judge's --estimate use it."""
    main = [m for m in MAIN_TABLE_METHODS if m in methods]
    pairs = [(scenario, Variant(method)) for scenario in scenarios for method in main]
    return pairs + [(ablation_scenario(scenarios), v) for v in ablation_variants(methods, eps_max, sweep)]
