"""ual.variants: one builder and parser of variant names (the workflow's paths, the report's rows)."""

from __future__ import annotations

import re

import pytest

from ual.variants import VARIANT_PATTERN, Variant, ablation_scenario, ablation_variants, ual_at


@pytest.mark.parametrize(
    ("name", "variant"),
    [
        ("sft", Variant("sft")),
        ("ual_shuffled", Variant("ual_shuffled")),
        ("ual_epsmax0.3", Variant("ual", 0.3)),
        ("ual_epsmax0.05", Variant("ual", 0.05)),
        ("ual_epsmax0", Variant("ual", 0.0)),
    ],
)
def test_names_parse_into_variants_and_back(name, variant):
    assert Variant.parse(name) == variant and variant.name == name
    assert re.fullmatch(VARIANT_PATTERN, name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("dpo", "'dpo' is not a variant name"),
        ("ual_epsmax", "'ual_epsmax' is not a variant name"),
        ("ual_epsmax1.5", "bad eps_max '1.5'"),
        ("ual_epsmax0.30", "it is spelled 'ual_epsmax0.3'"),
    ],
)
def test_other_names_are_refused_with_the_reason(name, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Variant.parse(name)


def test_only_ual_is_swept_and_eps_max_must_survive_its_name():
    with pytest.raises(ValueError, match="only ual is swept over eps_max, not 'ls'"):
        Variant("ls", 0.1)
    with pytest.raises(ValueError, match="exact in 6 digits"):
        Variant("ual", 0.1234567)  # its name would read back as 0.123457


def test_ablation_grid_and_the_main_ual_run():
    assert [v.name for v in ablation_variants(["sft", "ual", "ual_shuffled"], 0.2, [0.1, 0.2, 0.3])] == [
        "ual_shuffled",
        "ual_epsmax0.1",
        "ual_epsmax0.3",
    ]
    assert ablation_variants(["ual"], 0.2, []) == []
    assert ual_at(0.2, 0.2).name == "ual" and ual_at(0.3, 0.2).name == "ual_epsmax0.3"
    assert ablation_scenario(["high", "low", "mixed"]) == "mixed" and ablation_scenario(["low"]) == "low"


def test_epsilon_file_names_carry_the_seed_only_where_the_epsilon_depends_on_it():
    from ual.variants import EPSILON_NAME_PATTERN

    names = ("sft", "ls", "ual", "ual_epsmax0.3", "ual_shuffled")
    assert [Variant.parse(n).epsilon_name(2) for n in names] == [
        "sft", "ls", "ual", "ual_epsmax0.3", "ual_shuffled.seed2"]
    assert Variant.parse_epsilon_name("ual_shuffled.seed2") == (Variant("ual_shuffled"), 2)
    assert Variant.parse_epsilon_name("ual_epsmax0.3") == (Variant("ual", 0.3), None)
    assert all(re.fullmatch(EPSILON_NAME_PATTERN, n) for n in ("ual", "ual_shuffled.seed10", "ual_epsmax0.3"))
    for name, message in [("ual_shuffled", "variant ual_shuffled's is 'ual_shuffled.seed<seed>'"),
                          ("ual.seed1", "variant ual's is 'ual'"),
                          ("ual_shuffled.seed01", "not an epsilon file")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            Variant.parse_epsilon_name(name)


def test_trained_variants_are_the_main_grid_and_the_ablation_once():
    from ual.variants import Variant, trained_variants

    grid = trained_variants(["high", "mixed"], ["sft", "ls", "ual", "ual_shuffled"], 0.2, [0.1, 0.2])
    assert [(s, v.name) for s, v in grid] == [
        ("high", "sft"), ("high", "ls"), ("high", "ual"), ("mixed", "sft"), ("mixed", "ls"), ("mixed", "ual"),
        ("mixed", "ual_shuffled"), ("mixed", "ual_epsmax0.1")]
    assert trained_variants(["low"], ["sft"], 0.2, []) == [("low", Variant("sft"))]
