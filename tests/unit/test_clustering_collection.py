"""ual.analysis.hidden_states, model-free parts: top-K tokens, the position draw, layers, held-out records."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import ual
from ual.analysis.hidden_states import (
    TargetExample,
    count_target_tokens,
    plan_states,
    resolve_layers,
    select_top_tokens,
)
from ual.analysis.references import heldout_records, split_evenly

EXAMPLES = [
    TargetExample(input_ids=[1, 2, 3, 7, 7, 8, 9], prompt_length=3),  # targets 7 7 8 9 at positions 3..6
    TargetExample(input_ids=[1, 2, 8, 7, 5], prompt_length=2),  # targets 8 7 5 at positions 2..4
    TargetExample(input_ids=[1, 2, 3], prompt_length=3),  # response cut away: no target
]


def test_count_target_tokens_counts_only_response_positions():
    assert count_target_tokens(EXAMPLES) == {7: 3, 8: 2, 9: 1, 5: 1}


def test_select_top_tokens_by_count_then_smaller_id():
    assert select_top_tokens({7: 3, 8: 2, 9: 1, 5: 1}, 3) == [7, 8, 5]


def test_fewer_than_two_distinct_tokens_is_a_clear_error():
    with pytest.raises(ValueError, match="contain 1 distinct target token\\(s\\); clustering needs"):
        select_top_tokens({7: 4}, 2)
    with pytest.raises(ValueError, match="contain 0 distinct"):
        select_top_tokens({}, 2)


def test_k_larger_than_available_tokens_is_a_clear_error():
    with pytest.raises(ValueError, match="top_k_tokens=5 but the held-out responses contain only 4 distinct"):
        select_top_tokens({7: 3, 8: 2, 9: 1, 5: 1}, 5)


def test_plan_takes_every_candidate_in_record_order_when_under_max_states():
    plan = plan_states(EXAMPLES, [7, 8], max_states=100, seed=0)
    assert plan.n_targets == 7 and plan.n_candidates == 5
    assert plan.sample_index.tolist() == [0, 0, 0, 1, 1]
    assert plan.position.tolist() == [3, 4, 5, 2, 3]
    assert plan.label.tolist() == [7, 7, 8, 8, 7]


def test_plan_draws_max_states_by_seed_and_labels_match_positions():
    rng = np.random.default_rng(0)
    examples = [TargetExample(rng.integers(0, 6, size=40).tolist(), prompt_length=10) for _ in range(30)]
    plan = plan_states(examples, [0, 1, 2], max_states=50, seed=7)
    assert len(plan.label) == 50 and plan.n_candidates > 50
    again = plan_states(examples, [0, 1, 2], max_states=50, seed=7)
    assert np.array_equal(plan.position, again.position)
    assert np.array_equal(plan.sample_index, again.sample_index)
    assert not np.array_equal(plan.position, plan_states(examples, [0, 1, 2], max_states=50, seed=8).position)
    for i, t, label in zip(plan.sample_index, plan.position, plan.label, strict=True):
        assert t >= 10 and examples[i].input_ids[t] == label and label in (0, 1, 2)
    order = list(zip(plan.sample_index.tolist(), plan.position.tolist(), strict=True))
    assert order == sorted(set(order))  # unique rows, ordered by (record, position)


def test_resolve_layers_names_and_bounds():
    assert resolve_layers(30, 15) == {"last": 30, "layer_15": 15}
    assert resolve_layers(2, None) == {"last": 2}
    with pytest.raises(ValueError, match="middle_layer=2 is outside 0..1 for a model with 2 decoder layers"):
        resolve_layers(2, 2)


def test_split_evenly():
    assert split_evenly(33, 2) == [17, 16]
    assert split_evenly(1, 2) == [1, 0]
    assert split_evenly(8, 1) == [8]


def _record(dataset: str, i: int) -> dict:
    return {"id": f"{dataset}-{i}", "dataset": dataset, "instruction": f"q{i}", "input": "",
            "output": f"a{i}", "answer": None}


class StubData:
    """Stub of ual.data: 10 records per dataset; training = the first 4 of each scenario slice."""

    def __init__(self) -> None:
        self.pools = {name: [_record(name, i) for i in range(10)] for name in ("hi", "lo")}

    def load_records(self, dataset, split, mirror=None):
        return list(self.pools[dataset])

    def build_scenario(self, data_cfg, scenario):
        parts = {"high": ["hi"], "low": ["lo"], "mixed": ["hi", "lo"]}[scenario]
        return [record for part in parts for record in self.pools[part][:4]]

    def subsample(self, records, size, seed):
        return list(records[:size])


def _experiment(eval_samples: int, scenarios=("high", "low", "mixed")):
    data = SimpleNamespace(high=SimpleNamespace(dataset="hi", split="train"),
                           low=SimpleNamespace(dataset="lo", split="train"), mirror=None, scenarios=scenarios)
    analysis = SimpleNamespace(eval_samples=eval_samples, seed=0)
    return SimpleNamespace(name="stub", data=data, analysis=analysis)


@pytest.fixture
def stub_data(monkeypatch):
    stub = StubData()
    monkeypatch.setattr(ual, "data", stub, raising=False)
    return stub


def test_heldout_records_exclude_training_ids_and_split_mixed_evenly(stub_data):
    mixed = heldout_records(_experiment(5), "mixed")
    assert [r["id"] for r in mixed] == ["hi-4", "hi-5", "hi-6", "lo-4", "lo-5"]
    assert [r["id"] for r in heldout_records(_experiment(6), "low")] == [f"lo-{i}" for i in range(4, 10)]


def test_heldout_records_errors(stub_data):
    with pytest.raises(ValueError, match="asks for 7 held-out records of lo/train, but only 6 of 10"):
        heldout_records(_experiment(7), "low")
    with pytest.raises(ValueError, match="scenario 'mixed' is not in data.scenarios \\['low'\\]"):
        heldout_records(_experiment(2, scenarios=("low",)), "mixed")


def test_heldout_records_of_the_tiny_experiment_are_disjoint_from_training(data_mirror):
    from ual.experiment import load_experiment
    from ual.data import build_scenario

    experiment = load_experiment(Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml")
    records = heldout_records(experiment, "mixed")
    assert len(records) == experiment.analysis.eval_samples
    training = {record["id"] for record in build_scenario(experiment.data, "mixed")}
    assert not training & {record["id"] for record in records}
    half = experiment.analysis.eval_samples // 2
    assert [r["dataset"] for r in records] == [experiment.data.high.dataset] * half + [
        experiment.data.low.dataset
    ] * half
    assert records == heldout_records(experiment, "mixed")
