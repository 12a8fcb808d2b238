"""Fine-tune a base model with SFT, fixed label smoothing or UAL (per-sample label smoothing).

The methods differ only in the per-sample epsilon read from the epsilon file of ``ual.smoothing``
(``sft``: all 0, ``ls``: one constant, ``ual``/``ual_shuffled``: per sample); model, data, recipe and code
path are the same (docs/method.md). A run trains one variant (``ual.variants``): a method, at the
experiment's eps_max or at a point of the ablation sweep (``ual_epsmax0.3`` trains method ``ual``).

Inputs: the experiment YAML (``model``, ``data``, ``train``), a scenario (training set =
``ual.data.build_scenario(experiment.data, scenario)``), a variant, a seed and the epsilon JSONL
(``{"id", "dataset", "uncertainty", "epsilon"}`` per training sample, sidecar ``<file>.meta.json``).
Outputs, in ``--out DIR``: the model (safetensors, loadable by ``ual.models.load_model(DIR)``), its tokenizer
and ``train_metrics.json`` (written last, atomically, by ``training_metrics``: ``identity`` = {experiment,
scenario, variant, seed} of the command line, the training ``method``, per-step loss, tokens/s, peak memory,
epsilon file and sha256, resolved config, provenance); ``DIR/checkpoint-N`` while training (removed once the
final model is verified). Command::

    python -m ual.train --experiment experiments/tiny.yaml --scenario mixed --variant ual --seed 0 \\
        --epsilon results/tiny/epsilon/mixed/ual.jsonl --out results/tiny/seed0/train/mixed/ual

Several GPUs: ``deepspeed --num_gpus 8 -m ual.train ...`` or ``torchrun --nproc_per_node 8 -m ual.train ...``.

Checks before any step: the epsilon file exists, parses, has exactly the training set's ids, every epsilon is
finite and in [0, 1), and it fits the method (sft all zero, ls constant, sidecar mapping = the method's).
After saving: the checkpoint reloads with the model's parameter count and no all-zero tensor (the classic
ZeRO-3 empty-save bug, docs/method.md "Training recipe").

DeepSpeed (``train.deepspeed``: a JSON under experiments/deepspeed/, or null for none; the same code path
either way): HF fills the "auto" values. Without CUDA it runs with ``DS_ACCELERATOR=cpu``, the gloo backend
and fp32 (use the ``*_cpu.json`` configs, which set ``torch_adam``). A plain ``python -m ual.train`` with
DeepSpeed runs as a one-process group (MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK defaulted). The first
CPU run JIT-builds a DeepSpeed comm op (about 45 s, cached afterwards). Configs: ``zero2.json``,
``zero3.json`` (GPU; torch AdamW via ``torch_adam``, so no CUDA op is JIT-built), ``zero3_offload.json``
(optimizer and parameters on CPU with DeepSpeedCPUAdam, built once with g++), ``zero2_cpu.json``,
``zero3_cpu.json`` (CPU: fp32, no overlap_comm). Every ZeRO-3 config saves gathered 16-bit weights
(``stage3_gather_16bit_weights_on_model_save``). ``loss_path: lean`` runs under every config, ZeRO-3
included: the partitioned LM head is gathered for the loss (ual.lm_head); the paper profiles use it.

Resume: a rerun with the same ``--out`` continues from the newest complete ``checkpoint-N`` there
(``ual.checkpoints``; ``--resume PATH`` picks one, ``--fresh`` ignores them); the data order is fixed by
``--seed`` (Trainer seed and data_seed), so the loss trace continues as if never interrupted. An incomplete
checkpoint (a save cut off) is set aside as ``incomplete-checkpoint-N``; checkpoints of another run (other
model, data or train section, base model content, identity, method or epsilon file) are discarded, with a
warning each.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ual.config import Experiment, TrainConfig, config_hash, resolved_config
from ual.experiment import load_experiment
from ual.identity import Identity, add_identity_arguments
from ual.methods import get_method
from ual.provenance import file_sha256, sidecar_path, write_json
from ual.scenarios import SCENARIOS
from ual.smoothing import EpsilonFileError, read_epsilon_file
from ual.variants import Variant

logger = logging.getLogger(__name__)

__all__ = [
    "EpsilonFileError",
    "build_trainer",
    "load_epsilon",
    "main",
    "run_training",
    "to_training_arguments",
    "training_metrics",
]

METRICS_FILE = "train_metrics.json"
RUN_FILE = "train_run.json"  # identity of the run owning DIR's checkpoints (resume guard)


# ---- epsilon file (its one reader is ual.smoothing.read_epsilon_file) -----------------------------------


def load_epsilon(path: str | Path, records: Sequence[dict], method: str) -> list[float]:
    """Epsilon of each training record (in record order), validated against the set and the method.

    Raises:
        EpsilonFileError: the file is missing or malformed (``ual.smoothing.read_epsilon_file``), its ids
            differ from the training set's, or its values or sidecar do not fit ``method``.
    """
    path = Path(path)
    lines, meta = read_epsilon_file(path)
    values = {line.id: line.epsilon for line in lines}
    ids = [record["id"] for record in records]
    missing = [i for i in ids if i not in values]
    extra = sorted(set(values) - set(ids))
    if missing or extra:
        raise EpsilonFileError(
            f"{path}: ids do not match the training set ({len(ids)} samples; the file has "
            f"{len(values)}): {len(missing)} training ids missing from the file (e.g. {missing[:3]}), "
            f"{len(extra)} ids in the file not in the training set (e.g. {extra[:3]}). Was it made for "
            "another scenario or data slice?"
        )
    epsilon = [values[i] for i in ids]
    expected = get_method(method).mapping
    mapping = (meta or {}).get("mapping")
    if mapping is not None and mapping != expected:
        raise EpsilonFileError(
            f"{sidecar_path(path)}: mapping '{mapping}' but method '{method}' trains with '{expected}'"
        )
    if expected == "zero" and any(epsilon):
        raise EpsilonFileError(
            f"{path}: method '{method}' needs epsilon 0 for every sample; max is {max(epsilon)}"
        )
    if expected == "constant" and len(set(epsilon)) > 1:
        raise EpsilonFileError(
            f"{path}: method '{method}' needs one constant epsilon; found {len(set(epsilon))} values"
        )
    return epsilon


# ---- configuration and environment -------------------------------------------------------------------


def to_training_arguments(cfg: TrainConfig, seed: int, out: Path, deepspeed: str | None = None):
    """The one mapping TrainConfig -> transformers ``TrainingArguments`` (style guide s4.3)."""
    from transformers import TrainingArguments

    on_cpu = not torch.cuda.is_available()
    distributed = deepspeed is not None or int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        output_dir=str(out),
        seed=seed,
        data_seed=seed,  # the seed fixes the data order (open-instruct #188)
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps in transformers 5
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        bf16=cfg.bf16,
        activation_checkpointing=cfg.gradient_checkpointing,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        remove_unused_columns=False,  # keep the epsilon column (transformers #25054)
        deepspeed=deepspeed,
        ddp_backend="gloo" if on_cpu and distributed else None,
        use_cpu=on_cpu,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def _run_identity(experiment: Experiment, identity: Identity, method: str, eps_sha: str) -> dict[str, Any]:
    """What a run's checkpoints belong to: its identity and method, the sections training reads (as the
    workflow tracks them), the base model's content and the epsilon file."""
    from ual.models import model_fingerprint

    return {
        **identity.as_record(),
        "method": method,
        "config_hash": {name: config_hash(getattr(experiment, name)) for name in ("model", "data", "train")},
        "base_model": model_fingerprint(experiment.model.source, experiment.model.revision),
        "epsilon_sha256": eps_sha,
    }


def _resume_point(out: Path, identity: dict[str, Any], resume: str | None, fresh: bool) -> str | None:
    """``--resume PATH`` if complete, else the newest complete checkpoint of the run (``ual.checkpoints``)."""
    from ual.checkpoints import checkpoint_problem, resume_checkpoint

    if resume:
        if not Path(resume).is_dir():
            raise FileNotFoundError(f"--resume {resume}: no such checkpoint folder")
        if problem := checkpoint_problem(Path(resume)):
            raise FileNotFoundError(f"--resume {resume}: incomplete checkpoint ({problem})")
        return resume
    last = None if fresh else resume_checkpoint(out, identity, out / RUN_FILE)
    if last is not None:
        logger.info("resuming from %s", last)
    return None if last is None else str(last)


# ---- training ----------------------------------------------------------------------------------------


def build_trainer(
    experiment: Experiment,
    records: Sequence[dict],
    epsilon: Sequence[float],
    seed: int,
    out: Path,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    callbacks: Sequence[Any] = (),
):
    """The ``UALTrainer`` of one run (model loaded unless given) and the number of tokenised rows."""
    from ual.collate import EpsilonCollator, TrainDataset, build_examples, pack_examples
    from ual.trainer import UALTrainer, prepare_deepspeed_env

    cfg = experiment.train
    if cfg.deepspeed:
        if not Path(cfg.deepspeed).is_file():
            raise FileNotFoundError(f"train.deepspeed: {cfg.deepspeed} not found")
        prepare_deepspeed_env()
    args = to_training_arguments(cfg, seed, out, cfg.deepspeed)  # before the model: sets up DeepSpeed ZeRO-3
    if model_and_tokenizer is None:
        from ual.models import load_model

        mc = experiment.model
        model_and_tokenizer = load_model(mc.source, mc.revision, mc.dtype, mc.num_hidden_layers)
    model, tokenizer = model_and_tokenizer
    if cfg.gradient_checkpointing:
        model.config.use_cache = False
    examples = build_examples(records, epsilon, tokenizer, experiment.model.prompt_template, cfg.max_length)
    rows = pack_examples(examples, cfg.max_length) if cfg.packing else examples
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = UALTrainer(
        model=model,
        args=args,
        train_dataset=TrainDataset(rows),
        data_collator=EpsilonCollator(pad_id),
        processing_class=tokenizer,
        loss_path=cfg.loss_path,
        callbacks=list(callbacks),
    )
    return trainer, len(rows)


def run_training(
    experiment: Experiment,
    records: Sequence[dict],
    variant: str,
    seed: int,
    epsilon_path: str | Path,
    out: str | Path,
    scenario: str,
    resume: str | None = None,
    fresh: bool = False,
    callbacks: Sequence[Any] = (),
    model_and_tokenizer: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Train ``variant`` (a ``ual.variants`` name), save, verify and write ``train_metrics.json``; return the
    metrics ({} on ranks other than 0).

    ``model_and_tokenizer`` lets tests reuse one loaded model; by default it is loaded from
    ``experiment.model``. Extra ``callbacks`` are Trainer callbacks (tests use them to stop a run).
    """
    from ual.compat import full_numel
    from ual.trainer import SkipFinalCheckpoint, StepRecorder, verify_checkpoint

    method = Variant.parse(variant).method  # a ValueError naming a bad variant
    identity = Identity(experiment=experiment.name, scenario=scenario, variant=variant, seed=seed)
    out, epsilon_path = Path(out), Path(epsilon_path)
    epsilon = load_epsilon(epsilon_path, records, method)  # every input check before the model loads
    run = _run_identity(experiment, identity, method, file_sha256(epsilon_path))
    checkpoint = _resume_point(out, run, resume, fresh)
    trainer, num_rows = build_trainer(experiment, records, epsilon, seed, out, model_and_tokenizer, callbacks)
    expected_parameters = sum(full_numel(p) for p in trainer.model.parameters())
    logger.info("%s / %s / seed %d: %d samples in %d rows, epsilon mean %.4f", scenario, variant, seed,
                len(records), num_rows, sum(epsilon) / len(epsilon))
    recorder = StepRecorder(trainer)
    trainer.add_callback(recorder)
    trainer.add_callback(SkipFinalCheckpoint())
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / RUN_FILE, run)

    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    runtime = time.perf_counter() - started
    trainer.save_model(str(out))  # all ranks: ZeRO-3 gathers the 16-bit weights here
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return {}

    metrics = training_metrics(
        experiment, identity, method, trainer, recorder.records,
        epsilon_path=epsilon_path, epsilon=epsilon, num_samples=len(records), num_rows=num_rows,
        resumed_from=checkpoint, runtime=runtime, final_train_loss=result.training_loss,
        checkpoint=verify_checkpoint(out, expected_parameters),
    )  # fmt: skip
    for stale in out.glob("checkpoint-*"):  # only needed to resume an unfinished run
        shutil.rmtree(stale)
    write_json(out / METRICS_FILE, metrics)
    steps = metrics["steps"]
    logger.info("saved %s (%d steps, final loss %.4f, %.0f tokens/s)", out, trainer.state.global_step,
                steps[-1]["loss"] if steps else float("nan"), metrics["tokens_per_second"] or 0.0)
    return metrics


def training_metrics(
    experiment: Experiment,
    identity: Identity,
    method: str,
    trainer: Any,
    step_timing: list[dict[str, float]],
    *,
    epsilon_path: Path,
    epsilon: Sequence[float],
    num_samples: int,
    num_rows: int,
    resumed_from: str | None,
    runtime: float,
    final_train_loss: float,
    checkpoint: dict[str, int],
) -> dict[str, Any]:
    """The record ``train_metrics.json`` holds for a finished run (``trainer`` after ``train()``)."""
    from ual.provenance import run_metadata
    from ual.trainer import peak_memory

    cfg = experiment.train
    steps = [
        {k: entry[k] for k in ("step", "loss", "grad_norm", "learning_rate") if k in entry}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    seconds = sum(r["seconds"] for r in step_timing)
    world = trainer.args.world_size

    def per_second(key: str) -> float | None:  # rank 0's tokens times the number of ranks (equal on average)
        return world * sum(r[key] for r in step_timing) / seconds if seconds else None

    return {
        "identity": identity.as_record(),
        "method": method,
        "epsilon_file": str(epsilon_path),
        "epsilon_sha256": file_sha256(epsilon_path),
        "epsilon_summary": {
            "n": len(epsilon), "mean": sum(epsilon) / len(epsilon), "min": min(epsilon), "max": max(epsilon),
        },
        "num_samples": num_samples,
        "num_rows": num_rows,
        "packing": cfg.packing,
        "loss_path": trainer.loss_path,
        "deepspeed": cfg.deepspeed,
        "deepspeed_config": json.loads(Path(cfg.deepspeed).read_text()) if cfg.deepspeed else None,
        "world_size": world,
        "resumed_from": resumed_from,
        "global_steps": trainer.state.global_step,
        "train_runtime_s": runtime,
        "final_train_loss": final_train_loss,
        "steps": steps,
        "step_timing": step_timing,
        "tokens_per_second": per_second("tokens"),
        "response_tokens_per_second": per_second("response_tokens"),
        "peak_memory": peak_memory(),
        "checkpoint": checkpoint,
        "config": resolved_config(experiment),
        "provenance": run_metadata(stage="train", model=experiment.model.source),
    }  # fmt: skip


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train SFT / LS / UAL from an experiment file.")
    parser.add_argument("--experiment", required=True, type=Path)
    add_identity_arguments(parser)
    parser.add_argument(
        "--epsilon", required=True, type=Path, help="epsilon JSONL of python -m ual.smoothing"
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (model + train_metrics.json)")
    parser.add_argument("--resume", default=None, help="checkpoint folder (default: the last one in --out)")
    parser.add_argument("--fresh", action="store_true", help="ignore checkpoints already in --out")
    args = parser.parse_args(argv)
    missing = [f"--{name}" for name in ("scenario", "variant", "seed") if getattr(args, name) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    if args.scenario not in SCENARIOS:
        parser.error(f"--scenario: unknown scenario '{args.scenario}'; known: {', '.join(SCENARIOS)}")
    try:
        Variant.parse(args.variant)
    except ValueError as exc:
        parser.error(f"--variant: {exc}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from ual.data import build_scenario

    experiment = load_experiment(args.experiment)
    records = build_scenario(experiment.data, args.scenario)
    try:
        run_training(
            experiment, records, args.variant, args.seed, args.epsilon, args.out, args.scenario,
            resume=args.resume, fresh=args.fresh,
        )  # fmt: skip
    except EpsilonFileError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
