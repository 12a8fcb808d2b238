"""Experiment files load into frozen typed objects; bad files fail naming the file and the key.

Run: python -m pytest tests/unit/test_config.py
"""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from ual.config import ConfigError, Experiment, load_experiment

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))


def write_variant(tmp_path: Path, edit) -> Path:
    """Copy experiments/tiny.yaml with one edit applied; returns the new file."""
    raw = yaml.safe_load((REPO / "experiments" / "tiny.yaml").read_text())
    edit(raw)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_file_loads(path):
    experiment = load_experiment(path)
    assert isinstance(experiment, Experiment)
    assert experiment.name == path.stem


def test_loaded_experiment_is_frozen():
    experiment = load_experiment(REPO / "experiments" / "tiny.yaml")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        experiment.train.learning_rate = 1.0


def test_scientific_notation_without_dot_is_a_float():
    # YAML 1.1 reads "2e-5" as a string; our loader must read it as the number everyone means.
    experiment = load_experiment(REPO / "experiments" / "tiny.yaml")
    assert experiment.train.learning_rate == pytest.approx(2e-5)


def test_unknown_key_is_rejected_with_file_and_dotted_key(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["train"].update(lerning_rate=1e-5))
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert str(info.value) == f"{path}: unknown key 'train.lerning_rate'"


def test_unknown_top_level_section_is_rejected(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw.update(optimiser={"name": "adamw"}))
    with pytest.raises(ConfigError, match=r"variant\.yaml: unknown key 'optimiser'"):
        load_experiment(path)


def test_wrong_type_is_rejected_with_file_key_and_value(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["train"].update(per_device_batch_size="4"))
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}: key 'train.per_device_batch_size': Input should be a valid integer")
    assert message.endswith("(got '4')")


def test_boolean_is_not_accepted_as_a_number(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["epsilon"].update(eps_max=True))
    with pytest.raises(ConfigError, match=r"key 'epsilon\.eps_max'"):
        load_experiment(path)


def test_missing_required_science_knob_is_rejected(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["epsilon"].pop("eps_max"))
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert str(info.value) == f"{path}: missing required key 'epsilon.eps_max'"


def test_invalid_literal_names_the_allowed_values(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["train"].update(loss_path="fast"))
    with pytest.raises(ConfigError, match=r"key 'train\.loss_path': Input should be 'reference' or 'lean'"):
        load_experiment(path)


def test_eps_max_below_eps_min_is_rejected(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["epsilon"].update(eps_min=0.3, eps_max=0.1))
    with pytest.raises(ConfigError, match=r"eps_max \(0\.1\) must be >= eps_min \(0\.3\)"):
        load_experiment(path)


def test_several_problems_are_reported_together(tmp_path):
    def edit(raw):
        raw["train"]["bogus"] = 1
        raw["model"].pop("dtype")

    with pytest.raises(ConfigError) as info:
        load_experiment(write_variant(tmp_path, edit))
    lines = str(info.value).splitlines()
    assert any("missing required key 'model.dtype'" in line for line in lines)
    assert any("unknown key 'train.bogus'" in line for line in lines)


def test_name_is_taken_from_the_file_stem(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw.update(name="other"))
    with pytest.raises(ConfigError, match="'name' is taken from the file name"):
        load_experiment(path)


def test_missing_file_and_non_mapping_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="experiment file not found"):
        load_experiment(tmp_path / "absent.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list"):
        load_experiment(listing)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda raw: raw["evaluate"]["tasks"].append("mmlu"), "evaluate.tasks.3"),
        (lambda raw: raw["evaluate"]["sizes"].update(mmlu=10), "evaluate.sizes.mmlu"),
        (lambda raw: raw["evaluate"]["max_new_tokens"].update(mmlu=64), "evaluate.max_new_tokens.mmlu"),
    ],
)
def test_unknown_task_is_rejected_naming_the_file_the_key_and_the_known_tasks(tmp_path, edit, key):
    path = write_variant(tmp_path, edit)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert str(info.value) == (
        f"{path}: key '{key}': Value error, unknown task 'mmlu'; known tasks: alpacaeval, gsm8k, math "
        "(got 'mmlu')"
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["analysis"].update(compare_uncertainty=["verbalized"]), "lists elicit.method 'verbalized'"),
        (lambda c: c["analysis"].update(compare_uncertainty=["entropy", "entropy"]), "repeats a source"),
        (lambda c: (c["analysis"].update(compare_uncertainty=["entropy"]),
                    c["elicit"].update(backend="openai", base_url="http://127.0.0.1:1/v1")), "needs elicit.backend hf"),
    ],
)
def test_compared_uncertainty_sources_are_checked(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(write_variant(tmp_path, edit))
