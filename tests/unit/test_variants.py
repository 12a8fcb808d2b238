"""ual.variants: one builder and parser of variant names (the workflow's paths, the report's rows); a method
is one row of ual.methods (a toy method registered here flows through variants, epsilon and the tables)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from ual.methods import Method
from ual.scenarios import ablation_scenario
from ual.variants import VARIANT_PATTERN, Variant, ablation_variants, ual_at, variant_pattern


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
    assert [v.name for v in ablation_variants(["sft", "ual_dataset", "ual_shuffled"], 0.2, [0.3])] == [
        "ual_shuffled", "ual_dataset", "ual_epsmax0.3"]
    assert Variant.parse("ual_dataset") == Variant("ual_dataset")
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


@pytest.fixture()
def toy_method(monkeypatch):
    """A method registered in the test only: one row of ual.methods.METHODS (an ablation control with the
    constant mapping), and the tuple derived from the rows that it joins."""
    from ual import methods

    row = Method("ual_toy", "constant", seeded=False, main_table=False, label="UAL toy",
                 ablation_label="UAL toy (constant eps)", linestyle=":")
    monkeypatch.setitem(methods.METHODS, row.name, row)
    monkeypatch.setattr(methods, "ABLATION_CONTROLS", (*methods.ABLATION_CONTROLS, row.name))
    return row


def _metric(path, variant: str, accuracy: float) -> str:
    path.write_text(json.dumps({"task": "gsm8k", "metric": "accuracy", "accuracy": accuracy, "ci_low": accuracy - 0.05,
                                "ci_high": accuracy + 0.05, "n": 10, "identity": {
                                    "experiment": "unit", "scenario": "mixed", "variant": variant, "seed": 0}}))
    return path


def test_a_new_method_is_one_row_variants_epsilon_and_tables_follow(toy_method, tmp_path):
    import pandas as pd

    from ual.report import collect, figures, tables
    from ual.smoothing import variant_epsilon
    from ual.variants import trained_variants

    # its variant name parses, matches the workflow's wildcard and names its epsilon file
    assert Variant.parse("ual_toy") == Variant("ual_toy") and re.fullmatch(variant_pattern(), "ual_toy")
    assert Variant("ual_toy").epsilon_name(3) == "ual_toy" and Variant("ual_toy").label == "UAL toy"
    # the workflow trains it once, on the ablation scenario, as a control
    grid = trained_variants(["high", "mixed"], ["sft", "ual", "ual_toy"], 0.2, [])
    assert ("mixed", Variant("ual_toy")) in grid and ("high", Variant("ual_toy")) not in grid
    # its epsilon file: its row's mapping (constant: the mean UAL eps)
    experiment = SimpleNamespace(epsilon=SimpleNamespace(eps_min=0.0, eps_max=0.2, mapping="linear"),
                                 elicit=SimpleNamespace(on_missing="fail"), epsilon_source="verbalized")
    records = [{"id": "a", "dataset": "x"}, {"id": "b", "dataset": "x"}]
    scores = {"a": {"missing": False, "uncertainty": 0.0}, "b": {"missing": False, "uncertainty": 1.0}}
    lines, meta = variant_epsilon(experiment, records, scores, Variant("ual_toy"), seed=None)
    assert [line["epsilon"] for line in lines] == [0.1, 0.1]
    assert (meta["mapping"], meta["method"], meta["eps_max"]) == ("constant", "ual_toy", 0.2)
    # the report: a row of table_ablation under its ablation label, a line of fig_ablation, not in table_main
    metrics = collect.read_metrics([_metric(tmp_path / "sft.json", "sft", 0.5),
                                    _metric(tmp_path / "toy.json", "ual_toy", 0.6)])
    ablation = tables.ablation_table(metrics, "mixed", ["gsm8k"], eps_max=0.2, sweep=[])
    assert ablation[["variant", "eps_max", "GSM8K acc. (%)"]].values.tolist() == [
        ["SFT (eps = 0)", "0", "50.00 ± 5.00"], ["UAL toy (constant eps)", "0.2", "60.00 ± 5.00"]]
    main = tables.main_table(metrics, pd.DataFrame(columns=["scenario"]), ["mixed"], ["gsm8k"])
    assert "UAL toy" not in set(main["row"])
    (ax,) = figures.ablation_figure(metrics, "mixed", ["gsm8k"], 0.2, []).axes
    assert "UAL toy" in [text.get_text() for text in ax.get_legend().get_texts()]
