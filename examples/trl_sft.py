"""UAL in your own fine-tuning: score a dataset through a local OpenAI-compatible server, map the scores to
epsilon, and train with ``UALSFTTrainer`` (TRL's SFTTrainer with per-sample label smoothing).

    python examples/trl_sft.py --data train.jsonl --base-url http://127.0.0.1:8080/v1 --served-model smollm2 \
        --model HuggingFaceTB/SmolLM2-135M-Instruct --out runs/ual-sft

``train.jsonl`` holds prompt/completion (or chat ``messages``, or instruction/input/output) rows.
"""

import argparse
import json
from pathlib import Path

import torch
from datasets import Dataset
from trl import SFTConfig

from ual import UALSFTTrainer, elicit_dataset
from ual.models import load_model

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--base-url", required=True)
parser.add_argument("--served-model", required=True)
parser.add_argument("--model", required=True, help="the model to fine-tune (hub id, path or package:...)")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--eps-max", type=float, default=0.2)
parser.add_argument("--max-steps", type=int, default=100)
parser.add_argument("--num-hidden-layers", type=int, default=None, help="cut the model (a quick test)")
args = parser.parse_args()

# 1. elicit: every row gets "uncertainty" in [0, 1] and "epsilon" = eps_max * uncertainty (cached, resumable)
rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
scored = elicit_dataset(
    rows,
    "openai",
    args.served_model,
    base_url=args.base_url,
    eps_max=args.eps_max,
    cache=args.out / "elicit-cache.jsonl",
)
args.out.mkdir(parents=True, exist_ok=True)
(args.out / "scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scored))

# 2. train: the epsilon column is the per-sample label smoothing
model, tokenizer = load_model(args.model, num_hidden_layers=args.num_hidden_layers)
config = SFTConfig(
    output_dir=str(args.out),
    max_steps=args.max_steps,
    per_device_train_batch_size=4,
    learning_rate=1e-5,
    report_to="none",
    bf16=torch.cuda.is_available(),
    use_cpu=not torch.cuda.is_available(),
    gradient_checkpointing=False,
    save_strategy="no",
)
trainer = UALSFTTrainer(
    model=model, args=config, train_dataset=Dataset.from_list(scored), processing_class=tokenizer
)
trainer.train()
trainer.save_model(str(args.out / "model"))
