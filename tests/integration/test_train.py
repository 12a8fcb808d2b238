"""Integration tests of ual.train without DeepSpeed: SmolLM2 cut to 2 layers, 12 short samples, a few steps.

Runs are memoised per module (``runs``), so each configuration trains once and serves several assertions.
Equivalences checked against transformers itself: our ``sft`` equals a plain ``Trainer`` with the model's
own loss, and our ``ls`` equals ``Trainer(label_smoothing_factor=eps)`` (LabelSmoother), step for step.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformers import Trainer, TrainerCallback

from ual.experiment import load_experiment
from ual.losses import count_response_tokens
from ual.train import METRICS_FILE, build_trainer, load_epsilon, main, run_training, to_training_arguments

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RECORDS = [
    {
        "id": f"r{i:02d}",
        "dataset": "toy",
        "instruction": f"What is {i} plus {i + 3}?",
        "input": "" if i % 3 else "x",
        "output": f"{i} plus {i + 3} equals {2 * i + 3}. The answer is: {2 * i + 3}",
        "answer": str(2 * i + 3),
    }
    for i in range(12)
]
VARIED = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3] * 2


def make_experiment(**train):
    base = load_experiment(REPO / "experiments/tiny.yaml")
    settings = {
        "max_length": 64,
        "per_device_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "max_steps": 3,
        "deepspeed": None,
        "learning_rate": 1e-4,
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",
        "loss_path": "lean",
        "save_steps": 100,
        "packing": False,
    }
    settings.update(train)
    return base.model_copy(
        update={
            "train": base.train.model_copy(update=settings),
            "model": base.model.model_copy(update={"num_hidden_layers": 2}),
        }
    )


def write_epsilon(path: Path, values, records=RECORDS) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": r["id"], "dataset": r["dataset"], "uncertainty": 0.0, "epsilon": v}) + "\n"
            for r, v in zip(records, values, strict=True)
        )
    )
    return path


def losses(metrics_or_history) -> list[float]:
    history = metrics_or_history["steps"] if isinstance(metrics_or_history, dict) else metrics_or_history
    return [entry["loss"] for entry in history if "loss" in entry]


class _Killed(Exception):
    """Raised by a test callback to simulate a kill right after a checkpoint is written."""


class KillAfterSave(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Killed(f"killed after step {self.step}")


class GradCapture(TrainerCallback):
    def __init__(self):
        self.grads = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        for name, param in model.named_parameters():
            if param.grad is not None:
                self.grads[name] = param.grad.detach().clone()


class _DropUALKeys:
    """Collator for the plain transformers Trainer: our batches without epsilon / num_tokens."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, features):
        batch = self.collator(features)
        batch.pop("epsilon"), batch.pop("num_tokens")
        return batch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine this is ~3x faster than two spinning threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def fresh_model(tiny_smollm2):
    return lambda: (copy.deepcopy(tiny_smollm2[0]), tiny_smollm2[1])


@pytest.fixture(scope="module")
def runs(workdir, fresh_model):
    """Full runs through ``run_training`` (save, verify, metrics), memoised by tag."""
    cache: dict[str, dict] = {}

    def run(tag: str, method: str, values, **train) -> dict:
        if tag not in cache:
            eps = write_epsilon(workdir / f"{tag}.jsonl", values)
            cache[tag] = run_training(
                make_experiment(**train),
                RECORDS,
                method,
                0,
                eps,
                workdir / tag,
                "mixed",
                fresh=True,
                model_and_tokenizer=fresh_model(),
            )
        return cache[tag]

    return run


@pytest.fixture(scope="module")
def traces(workdir, fresh_model):
    """Loss traces of the same trainer without the save/verify epilogue, memoised by (method, epsilon)."""
    cache: dict[tuple, list[float]] = {}

    def trace(method: str, value: float) -> list[float]:
        key = (method, value)
        if key not in cache:
            if method == "hf":  # transformers' own Trainer: model loss (0) or LabelSmoother (value)
                cache[key] = plain_hf_losses(workdir, fresh_model, value)
            else:
                eps_file = write_epsilon(workdir / f"trace_{method}_{value}.jsonl", [value] * len(RECORDS))
                epsilon = load_epsilon(eps_file, RECORDS, method)  # the method's own checks
                trainer, _ = build_trainer(
                    make_experiment(), RECORDS, epsilon, 0, workdir / f"trace_{method}_{value}", fresh_model()
                )
                trainer.train()
                cache[key] = losses(trainer.state.log_history)
        return cache[key]

    return trace


def plain_hf_losses(workdir, fresh_model, label_smoothing: float) -> list[float]:
    """Loss trace of transformers' own Trainer (model loss or LabelSmoother) on the same batches."""
    experiment = make_experiment()
    trainer, _ = build_trainer(experiment, RECORDS, [0.0] * len(RECORDS), 0, workdir / "hf", fresh_model())
    args = to_training_arguments(experiment.train, 0, workdir / f"hf{label_smoothing}")
    args.label_smoothing_factor = label_smoothing
    plain = Trainer(
        model=trainer.model,
        args=args,
        train_dataset=trainer.train_dataset,
        data_collator=_DropUALKeys(trainer.data_collator),
    )
    plain.train()
    return losses(plain.state.log_history)


def test_loss_decreases_for_sft_ls_and_ual(runs, traces):
    for trace in (traces("sft", 0.0), traces("ls", 0.1), losses(runs("ual", "ual", VARIED))):
        assert len(trace) == 3 and trace[-1] < trace[0] - 0.5, trace


def test_ual_with_zero_epsilon_equals_sft_and_plain_transformers(traces):
    assert traces("ual", 0.0) == pytest.approx(traces("sft", 0.0), rel=1e-6)
    assert traces("sft", 0.0) == pytest.approx(traces("hf", 0.0), rel=1e-5)


def test_ual_with_constant_epsilon_equals_ls_and_label_smoother(traces):
    assert traces("ual", 0.1) == pytest.approx(traces("ls", 0.1), rel=1e-6)
    assert traces("ls", 0.1) == pytest.approx(traces("hf", 0.1), rel=1e-5)
    assert traces("ls", 0.1) != pytest.approx(traces("sft", 0.0), rel=1e-3)


def test_lean_and_reference_loss_paths_train_alike(runs):
    lean = runs("ual", "ual", VARIED)
    reference = runs("ual_reference", "ual", VARIED, loss_path="reference")
    assert (lean["loss_path"], reference["loss_path"]) == ("lean", "reference")
    assert losses(lean) == pytest.approx(losses(reference), rel=1e-4)


def test_checkpoint_and_metrics_are_written_and_verified(runs, workdir, tiny_smollm2):
    from ual.models import load_model

    metrics = runs("ual", "ual", VARIED)
    out = workdir / "ual"
    on_disk = json.loads((out / METRICS_FILE).read_text())
    assert on_disk["steps"] == metrics["steps"] and on_disk["method"] == "ual"
    assert on_disk["identity"] == {"experiment": "tiny", "scenario": "mixed", "variant": "ual", "seed": 0}
    for key in ("tokens_per_second", "peak_memory", "epsilon_sha256", "config", "provenance", "step_timing"):
        assert on_disk[key], key
    assert on_disk["peak_memory"]["kind"] == "rss" and on_disk["config"]["train"]["loss_path"] == "lean"
    assert on_disk["provenance"]["versions"]["transformers"]
    assert on_disk["epsilon_summary"]["max"] == 0.3 and not list(out.glob("checkpoint-*"))
    model, tokenizer = load_model(str(out))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tiny_smollm2[0].parameters())
    assert on_disk["checkpoint"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert tokenizer.eos_token == "<|im_end|>"
    changed = (
        model.model.layers[0].self_attn.q_proj.weight
        - tiny_smollm2[0].model.layers[0].self_attn.q_proj.weight
    )
    assert changed.abs().max() > 0  # trained weights were saved, not the initial ones


def test_packed_run_trains_and_packed_loss_equals_unpacked(runs, tiny_smollm2):
    from ual.collate import EpsilonCollator, build_examples, pack_examples
    from ual.losses import label_smoothed_nll_reference

    metrics = runs("packed", "ual", VARIED, packing=True, max_steps=2, max_length=128)
    assert metrics["num_rows"] < metrics["num_samples"] and len(losses(metrics)) == 2
    model, tokenizer = tiny_smollm2
    examples = build_examples(RECORDS[:3], VARIED[1:4], tokenizer, "alpaca", max_length=64)
    collate = EpsilonCollator(tokenizer.pad_token_id)
    padded, packed = collate(examples), collate(pack_examples(examples, max_length=192))
    assert packed["input_ids"].shape[0] == 1
    n = count_response_tokens(padded["labels"])
    assert n == count_response_tokens(packed["labels"])
    with torch.no_grad():
        logits_padded = model(
            input_ids=padded["input_ids"], attention_mask=padded["attention_mask"], use_cache=False
        ).logits
        logits_packed = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).logits
    loss_padded = label_smoothed_nll_reference(
        logits_padded, padded["labels"], padded["epsilon"], num_items=n
    )
    loss_packed = label_smoothed_nll_reference(
        logits_packed, packed["labels"], packed["epsilon"], num_items=n
    )
    assert loss_packed.item() == pytest.approx(loss_padded.item(), rel=1e-5)  # no attention across segments


@pytest.mark.parametrize(
    ("loss_path", "splits"), [("lean", ((8, 1), (4, 2), (1, 8))), ("reference", ((8, 1), (2, 4)))]
)
def test_gradient_accumulation_does_not_change_the_first_step(workdir, fresh_model, loss_path, splits):
    """batch x accumulation = 8 samples, whatever the split: same loss and same gradient (no clipping)."""
    grads, first_loss = [], []
    for batch, accumulation in splits:
        experiment = make_experiment(
            per_device_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            max_steps=1,
            max_grad_norm=0.0,
            loss_path=loss_path,
            max_length=48,
        )
        capture = GradCapture()
        trainer, _ = build_trainer(
            experiment, RECORDS, VARIED, 0, workdir / f"ga{batch}", fresh_model(), [capture]
        )
        trainer.train()
        grads.append(capture.grads)
        first_loss.append(losses(trainer.state.log_history)[0])
    assert first_loss[1:] == pytest.approx([first_loss[0]] * (len(splits) - 1), rel=1e-5)
    # float32 sums in another order: absolute differences scale with the tensor's largest entry (the tied
    # embedding's gradient, max ~5, differs by up to ~5e-6 in a few of its 28M near-zero entries); a
    # normalisation bug would differ by a factor of the accumulation steps
    for other in grads[1:]:
        for name, grad in grads[0].items():
            atol = 1e-5 * float(grad.abs().max())
            torch.testing.assert_close(other[name], grad, rtol=1e-4, atol=atol, msg=name)


def test_global_normaliser_equals_transformers_count_for_shifted_labels(workdir, fresh_model):
    trainer, _ = build_trainer(make_experiment(), RECORDS, VARIED, 0, workdir / "count", fresh_model())
    batches = list(trainer.get_train_dataloader())[:2]
    ours = trainer.get_batch_samples(iter(batches), 2, torch.device("cpu"))[1]
    assert int(ours) == sum(count_response_tokens(b["labels"]) for b in batches)
    assert trainer._loss_shifts_labels and int(
        trainer._get_num_items_in_batch(batches, torch.device("cpu"))
    ) == int(ours)


def test_seed_controls_data_order(workdir, fresh_model):
    model_and_tokenizer = fresh_model()

    def order(seed):
        trainer, _ = build_trainer(
            make_experiment(), RECORDS, VARIED, seed, workdir / "order", model_and_tokenizer
        )
        return [
            tuple(row[:40].tolist()) for batch in trainer.get_train_dataloader() for row in batch["input_ids"]
        ]

    first = order(0)
    assert order(0) == first and sorted(order(1)) == sorted(first) and order(1) != first


def test_kill_after_checkpoint_then_resume_continues_the_loss_trace(workdir, fresh_model):
    eps = write_epsilon(workdir / "resume.jsonl", VARIED)
    experiment = make_experiment(max_steps=4, save_steps=2)
    full = run_training(
        experiment,
        RECORDS,
        "ual",
        0,
        eps,
        workdir / "uninterrupted",
        "mixed",
        model_and_tokenizer=fresh_model(),
    )
    out = workdir / "killed"
    with pytest.raises(_Killed):
        run_training(
            experiment,
            RECORDS,
            "ual",
            0,
            eps,
            out,
            "mixed",
            callbacks=[KillAfterSave(2)],
            model_and_tokenizer=fresh_model(),
        )
    assert (out / "checkpoint-2").is_dir() and not (out / METRICS_FILE).exists()
    # A newer checkpoint cut off mid-save (no trainer_state.json, which Trainer writes last): it used to be
    # resumed and fail with FileNotFoundError on every rerun; now it is set aside and checkpoint-2 resumed.
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-4")
    (out / "checkpoint-4" / "trainer_state.json").unlink()
    resumed = run_training(
        experiment, RECORDS, "ual", 0, eps, out, "mixed", model_and_tokenizer=fresh_model()
    )
    assert resumed["resumed_from"].endswith("checkpoint-2")
    assert losses(resumed) == pytest.approx(losses(full), rel=1e-6)
    assert [s["step"] for s in resumed["step_timing"]] == [3, 4]
    assert (out / "incomplete-checkpoint-4" / "model.safetensors").is_file()  # kept for inspection
    assert not any(out.glob("checkpoint-*"))


def _small_experiment_file(tmp: Path, mirror: Path) -> Path:
    raw = yaml.safe_load((REPO / "experiments/tiny.yaml").read_text())
    raw["model"]["num_hidden_layers"] = 2
    raw["data"].update(
        mirror=str(mirror), high={**raw["data"]["high"], "size": 3}, low={**raw["data"]["low"], "size": 3}
    )
    raw["train"].update(
        max_length=64, max_steps=1, deepspeed=None, per_device_batch_size=2, gradient_accumulation_steps=1
    )
    path = tmp / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_trains_on_the_scenario_and_rejects_a_mismatched_epsilon_file(workdir, data_mirror):
    from ual.data import build_scenario

    experiment_file = _small_experiment_file(workdir, data_mirror)
    records = build_scenario(load_experiment(experiment_file).data, "mixed")
    eps = write_epsilon(workdir / "cli.jsonl", [0.0] * len(records), records)
    common = [
        "--experiment",
        str(experiment_file),
        "--scenario",
        "mixed",
        "--seed",
        "0",
        "--epsilon",
        str(eps),
    ]
    with pytest.raises(SystemExit, match="ids do not match the training set"):
        main([*common[:3], "high", *common[4:], "--variant", "sft", "--out", str(workdir / "cli_bad")])
    assert not (workdir / "cli_bad").exists()  # failed before any step
    with pytest.raises(SystemExit, match="method 'ls' needs one constant epsilon|mapping"):
        write_epsilon(eps, [0.0, 0.1] * (len(records) // 2), records)
        main([*common, "--variant", "ls", "--out", str(workdir / "cli_bad")])
    write_epsilon(eps, [0.0] * len(records), records)
    main([*common, "--variant", "sft", "--out", str(workdir / "cli")])
    metrics = json.loads((workdir / "cli" / METRICS_FILE).read_text())
    assert metrics["num_samples"] == 6 and len(metrics["steps"]) == 1 and metrics["method"] == "sft"
    assert metrics["identity"] == {"experiment": "small", "scenario": "mixed", "variant": "sft", "seed": 0}


def test_cli_refuses_a_bad_variant_or_scenario_and_a_missing_identity(capsys):
    common = ["--experiment", "x.yaml", "--epsilon", "e.jsonl", "--out", "o", "--seed", "0"]
    for extra, message in (
        (["--scenario", "mixed", "--variant", "ual_epsmax2"], "--variant: 'ual_epsmax2' is not a variant name"),
        (["--scenario", "middle", "--variant", "ual"], "--scenario: unknown scenario 'middle'; known: high"),
        (["--scenario", "mixed"], "the following arguments are required: --variant"),
    ):
        with pytest.raises(SystemExit):
            main([*common, *extra])
        assert message in capsys.readouterr().err
