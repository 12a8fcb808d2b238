"""Every dataset an experiment names resolves to a manifest file or a pinned hub source; the manifest is the
mirror's; the data sources record and the rerun trigger follow the files' content (ual.inputs)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ual.experiment import load_experiment
from ual.data import DATASETS, MANIFEST, REFERENCE_FILES
from ual.provenance import file_sha256
from ual.inputs import (
    TRAIN_ROLES,
    data_groups,
    data_sources,
    data_trigger,
    experiment_inputs,
    manifest_files,
    read_sources_records,
    write_sources_record,
)

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml")) + [REPO / "tests" / "fixtures" / "smoke.yaml"]
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def test_every_registered_split_is_a_manifest_file_or_a_pinned_hub_dataset():
    for dataset, splits in DATASETS.items():
        for split, source in splits.items():
            if source.mirror_file is not None:
                assert source.mirror_file in MANIFEST, f"{dataset}/{split}"
            else:
                assert COMMIT.match(source.hub_revision or ""), f"{dataset}/{split}: unpinned {source.hub_id}"
    assert set(REFERENCE_FILES.values()) <= set(MANIFEST)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_dataset_an_experiment_names_resolves_to_a_pinned_source(path, monkeypatch, tmp_path):
    monkeypatch.setenv("UAL_DATA_MIRROR", str(tmp_path))  # nothing fetched: the manifest's facts are used
    experiment = load_experiment(path)
    sources = data_sources(experiment)
    roles = {role for record in sources for role in record["used_for"]}
    assert roles == {item.role for item in experiment_inputs(experiment)}
    assert set(TRAIN_ROLES) <= roles and {f"evaluate.{task}" for task in experiment.evaluate.tasks} <= roles
    for record in sources:
        if record["source"] == "mirror":
            entry = MANIFEST[record["file"]]
            assert record["sha256"] == entry.sha256 and record["upstream"] == entry.upstream
            assert not record["present"] and record["matches_manifest"]
        else:
            assert record["source"] == "hub" and COMMIT.match(record["revision"]), record
    assert [entry.name for entry in manifest_files(experiment)] == [
        r["file"] for r in sources if r["source"] == "mirror"
    ]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_hub_model_an_experiment_names_is_pinned(path):
    experiment = load_experiment(path)
    models = [(experiment.model.source, experiment.model.revision)]
    if experiment.elicit.backend == "hf":
        models.append((experiment.elicit.model, experiment.elicit.revision))
    for source, revision in models:
        if not source.startswith("package:") and not Path(source).exists():  # a hub id
            assert COMMIT.match(revision or ""), f"{path.name}: {source} has no pinned revision"


def test_the_manifest_is_the_mirror_and_its_manifest(data_mirror):
    if not (data_mirror / "MANIFEST.md").is_file():
        pytest.skip(f"{data_mirror} has no MANIFEST.md")
    table = (data_mirror / "MANIFEST.md").read_text(encoding="utf-8")
    for name, entry in MANIFEST.items():
        path = data_mirror / name
        assert path.stat().st_size == entry.size and file_sha256(path) == entry.sha256, name
        assert f"`{name}`" in table and entry.sha256 in table and entry.licence in table
        assert f"{entry.repository} @ `{entry.commit[:12]}` : `{entry.path}`" in table, name
        assert f"{entry.repository} = `{entry.commit}`" in table


def test_a_changed_mirror_file_changes_the_trigger_of_exactly_its_group(data_mirror, tmp_path, monkeypatch):
    experiment = load_experiment(REPO / "experiments" / "tiny.yaml")
    assert data_groups(experiment) == ["train", "alpacaeval", "references", "gsm8k", "math", "calibration"]
    for entry in manifest_files(experiment):
        (tmp_path / entry.name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_mirror / entry.name, tmp_path / entry.name)
    monkeypatch.setenv("UAL_DATA_MIRROR", str(tmp_path))
    before = {group: data_trigger(data_sources(experiment), group) for group in data_groups(experiment)}
    changed = tmp_path / "gsm8k" / "test.jsonl"
    changed.write_bytes(changed.read_bytes().replace(b"Janet", b"Janey", 1))
    sources = data_sources(experiment)
    after = {group: data_trigger(sources, group) for group in data_groups(experiment)}
    # the GSM8K test split is read twice: the task's items and the analysis stage's references
    assert [group for group in before if before[group] != after[group]] == ["gsm8k", "calibration"]
    assert after["gsm8k"] == f"gsm8k/test.jsonl={file_sha256(changed)[:16]}"
    [record] = [r for r in sources if r.get("file") == "gsm8k/test.jsonl"]
    assert record["present"] and not record["matches_manifest"] and record["read_as"] == ["gsm8k/test"]
    assert record["used_for"] == ["evaluate.gsm8k", "analysis.calibration.gsm8k"]


def test_the_group_records_unite_to_the_experiments_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("UAL_DATA_MIRROR", str(tmp_path))
    experiment = load_experiment(REPO / "experiments" / "tiny.yaml")
    paths = []
    for group in data_groups(experiment):
        paths.append(tmp_path / f"{group}.json")
        write_sources_record(paths[-1], experiment, group, data_sources(experiment, group))
    united = read_sources_records(paths)
    assert united == data_sources(experiment)
    [references] = [r for r in united if r["file"].endswith("text_davinci_003/model_outputs.json")]
    assert references["used_for"] == ["evaluate.alpacaeval", "evaluate.alpacaeval.references"]
    paths[0].write_text('{"sources": 3}')
    with pytest.raises(ValueError, match=rf"^{paths[0]}: not a data sources record"):
        read_sources_records(paths)
