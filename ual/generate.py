"""Greedy generation of model outputs for evaluation: transformers (batched, left padding) or vLLM.

Inputs: an experiment (which items: ``evaluate.sizes`` drawn by ``data.seed``; ``evaluate.max_new_tokens``,
``evaluate.batch_size``; ``model.dtype`` and ``model.prompt_template``), a model (a checkpoint folder of
``ual.train`` or any ``ual.models`` source) and a task of ``ual.tasks.TASKS``.
Outputs: ``--out outputs.json`` in alpaca_eval's model_outputs format, a JSON list of
{instruction, output, generator, dataset, id} in item order, and ``outputs.json.meta.json`` (model, backend,
decoding settings, generated tokens and tokens/s, provenance).

    python -m ual.generate --experiment experiments/tiny.yaml --model results/tiny/.../checkpoint \\
        --task gsm8k --out results/tiny/.../gsm8k/outputs.json [--generator NAME] [--backend auto|hf|vllm]

Prompts and stop strings come from the task (``ual.tasks``): gsm8k and math follow the MetaMath protocol for
every model (``ual.tasks.metamath``); alpacaeval uses the model's template (``ual.prompts``: ``alpaca`` or
``chat``). Prompt text becomes token ids through ``ual.prompts.encode_prompts`` under the task's template,
exactly as training tokenises it (a chat-rendered prompt gets no extra special tokens). Decoding is greedy up
to ``max_new_tokens``, ending at EOS or at the task's stop strings; the stop string is cut from the output,
as vLLM does.

Resumable: every finished batch is appended to ``<out>.partial.jsonl`` (first line: the settings, which
name the model by its content, ``ual.models.model_fingerprint``, not its path; each item carries a hash of
its prompt); a rerun of the same model, settings and prompts skips the ids already there. A partial file of
another model or other settings (a retrained checkpoint, an edited ``evaluate`` section) is discarded with a
warning and everything is generated again; an item whose prompt changed is generated again. The final file
is written atomically and the partial file removed. The partial file is not a declared workflow output on
purpose: Snakemake deletes a job's outputs before it runs the job, also when it reruns an interrupted one,
which is when the partial file is needed; the identity check above is what keeps a stale one out.

Backends: ``hf`` (transformers ``generate``; batches are sorted by prompt length to cut padding) and ``vllm``
(used by ``auto`` when vLLM is importable and a GPU is present; kept to ``generate_vllm`` below).

Changelog: v1 - initial. v2 - prompts, stop strings and special tokens from ``ual.tasks`` / ``ual.prompts``
(outputs unchanged); vLLM gets token ids, so its prompts carry the same special tokens as training.
v3 - resume keyed by the model's content, the settings (dtype, batch size, task version) and each prompt;
a mismatched partial file is discarded, not refused; the experiment's model revision is used.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ual.config import Experiment
from ual.experiment import load_experiment
from ual.prompts import encode_prompts
from ual.provenance import changed_keys, write_json
from ual.tasks import TASKS, get_task

logger = logging.getLogger(__name__)

__all__ = ["generate_hf", "generate_outputs", "generate_vllm", "main", "truncate_at_stop"]


def truncate_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """Cut ``text`` at the earliest stop string (the stop string itself removed).

    >>> truncate_at_stop("x = 3.\\nThe answer is: 3\\n\\n### Instruction: more", ["Instruction:", "Question"])
    'x = 3.\\nThe answer is: 3\\n\\n### '
    """
    cut = min((i for i in (text.find(s) for s in stop_strings) if i >= 0), default=len(text))
    return text[:cut]


def _count_new_tokens(row: torch.Tensor, stop_ids: set[int]) -> int:
    """Generated tokens before the first EOS / pad. A finished sequence is padded, and pad may equal EOS,
    so the final EOS itself is not counted (the same count batched or alone)."""
    for position, token in enumerate(row.tolist()):
        if token in stop_ids:
            return position
    return len(row)


@torch.inference_mode()
def generate_hf(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    stop_strings: Sequence[str] = (),
    batch_size: int = 16,
    prompt_template: str = "alpaca",
    on_batch: Callable[[list[int], list[str], list[int]], None] | None = None,
    progress: bool = True,
) -> tuple[list[str], list[int]]:
    """Greedy completions of ``prompts`` with transformers, ``batch_size`` prompts per ``generate`` call.

    ``prompt_template`` is the ``ual.prompts`` template the prompts are written in (it decides the special
    tokens, ``ual.prompts.encode_prompts``). Returns (texts cut at the stop strings, generated-token counts).
    ``on_batch(indices, texts, counts)`` is called after every batch (indices into ``prompts``), which is how
    ``generate_outputs`` checkpoints.
    """
    from tqdm.auto import tqdm
    from transformers import GenerationConfig

    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        stop_strings=list(stop_strings) or None,
    )
    stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    lengths = [len(ids) for ids in encode_prompts(list(prompts), tokenizer, prompt_template)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])  # similar lengths share a batch
    texts: list[str] = [""] * len(prompts)
    counts: list[int] = [0] * len(prompts)
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for indices in tqdm(batches, desc="generate", unit="batch", disable=not progress):
            encoded = encode_prompts(
                [prompts[i] for i in indices], tokenizer, prompt_template, return_tensors="pt", padding=True
            ).to(device)
            generated = model.generate(**encoded, generation_config=config, tokenizer=tokenizer)
            new = generated[:, encoded["input_ids"].shape[1] :]
            batch_texts, batch_counts = [], []
            for index, row in zip(indices, new):
                count = _count_new_tokens(row, stop_ids)
                text = tokenizer.decode(row[:count], skip_special_tokens=True)
                texts[index], counts[index] = truncate_at_stop(text, stop_strings).strip(), count
                batch_texts.append(texts[index])
                batch_counts.append(count)
            if on_batch is not None:
                on_batch(list(indices), batch_texts, batch_counts)
    finally:
        tokenizer.padding_side = side
    return texts, counts


def generate_vllm(
    model_path: str,
    prompt_ids: Sequence[list[int]],
    *,
    max_new_tokens: int,
    stop_strings: Sequence[str],
    dtype: str,
) -> tuple[list[str], list[int]]:
    """Greedy completions with vLLM (MetaMath's own decoder: temperature 0, top_p 1, the same stop list).

    The prompts are given as token ids (``ual.prompts.encode_prompts``): vLLM would add the tokenizer's
    special tokens to prompt text, also to a chat-rendered prompt that holds them already.
    """
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_path, dtype=dtype, seed=0)
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_new_tokens, stop=list(stop_strings))
    results = llm.generate([{"prompt_token_ids": list(ids)} for ids in prompt_ids], params)
    texts = [truncate_at_stop(r.outputs[0].text, stop_strings).strip() for r in results]
    return texts, [len(r.outputs[0].token_ids) for r in results]


def _choose_backend(backend: str) -> str:
    if backend == "auto":
        has_vllm = importlib.util.find_spec("vllm") is not None
        return "vllm" if has_vllm and torch.cuda.is_available() else "hf"
    return backend


def _prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def _resume_partial(path: Path, settings: dict[str, Any], prompt_hashes: dict[str, str]) -> dict[str, Any]:
    """Finished items of an interrupted run of this very model, settings and prompts (id -> item).

    A partial file of another model (its fingerprint), other settings, or one that cannot be read is
    discarded with a warning; an item whose prompt changed since is dropped (it is generated again).
    """
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        previous = json.loads(lines[0]).get("settings") if lines else None
    except (json.JSONDecodeError, AttributeError):
        previous = None
    if previous != settings:
        changed = ", ".join(changed_keys(previous, settings))
        logger.warning("discarding %s: partial outputs of another model or settings (%s differ)", path,
                       changed)
        path.unlink()
        return {}
    done, stale = {}, 0
    for line in lines[1:]:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            break  # a batch cut off mid-write by a kill: regenerate from here
        if prompt_hashes.get(item["id"]) == item.get("prompt_sha256"):
            done[item["id"]] = item
        else:
            stale += 1
    if stale:
        logger.warning("%s: %d partial outputs of other prompts discarded", path, stale)
    return done


def generate_outputs(
    experiment: Experiment,
    task: str,
    model_source: str,
    out: Path,
    generator: str | None = None,
    backend: str = "auto",
    num_hidden_layers: int | None = None,
) -> list[dict]:
    """Generate ``task``'s outputs for the experiment's items and write ``out`` (+ ``out.meta.json``)."""
    from ual.models import load_model, load_tokenizer, model_fingerprint, resolve_model
    from ual.provenance import run_metadata

    cfg, out, spec = experiment.evaluate, Path(out), get_task(task)
    template = spec.prompt_template(experiment.model.prompt_template)
    records = spec.records(experiment)
    generator = generator or Path(model_source.rstrip("/")).name.removeprefix("package:")
    backend = _choose_backend(backend)
    revision = None
    if model_source == experiment.model.source:
        revision = experiment.model.revision
        if num_hidden_layers is None:
            num_hidden_layers = experiment.model.num_hidden_layers
    # The resume identity: what the model is (its weights, not its path), the decoding settings, the prompts.
    settings = {
        "task": task,
        "task_version": spec.version,
        "model": model_source,
        "model_fingerprint": model_fingerprint(model_source, revision),
        "revision": revision,
        "dtype": experiment.model.dtype,
        "generator": generator,
        "backend": backend,
        "prompt_template": experiment.model.prompt_template,
        "prompt": spec.describe_prompt(experiment.model.prompt_template),
        "max_new_tokens": cfg.max_new_tokens[task],
        "stop_strings": list(spec.stop_strings),
        "num_hidden_layers": num_hidden_layers,
        "batch_size": cfg.batch_size,
    }
    tokenizer = load_tokenizer(model_source, revision)
    prompts = {r["id"]: spec.render_prompt(r, experiment.model.prompt_template, tokenizer) for r in records}
    prompt_hashes = {key: _prompt_sha256(prompt) for key, prompt in prompts.items()}
    partial = Path(str(out) + ".partial.jsonl")
    done = _resume_partial(partial, settings, prompt_hashes)
    todo = [r for r in records if r["id"] not in done]
    logger.info(
        "%s: %d items, %d already done (%s), %d to generate",
        task,
        len(records),
        len(done),
        partial,
        len(todo),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if not partial.is_file():
        partial.write_text(json.dumps({"settings": settings}) + "\n", encoding="utf-8")

    def checkpoint(indices: list[int], texts: list[str], counts: list[int]) -> None:
        with partial.open("a", encoding="utf-8") as stream:
            for index, text, count in zip(indices, texts, counts):
                key = todo[index]["id"]
                item = {"id": key, "output": text, "new_tokens": count, "prompt_sha256": prompt_hashes[key]}
                done[item["id"]] = item
                stream.write(json.dumps(item, ensure_ascii=False) + "\n")
            stream.flush()
            os.fsync(stream.fileno())

    start = time.perf_counter()
    if todo and backend == "vllm":
        if num_hidden_layers is not None:
            raise ValueError("num_hidden_layers is not supported with the vllm backend")
        texts, counts = generate_vllm(
            resolve_model(model_source, revision).path,
            encode_prompts([prompts[r["id"]] for r in todo], tokenizer, template)["input_ids"],
            max_new_tokens=cfg.max_new_tokens[task],
            stop_strings=spec.stop_strings,
            dtype=experiment.model.dtype,
        )
        checkpoint(list(range(len(todo))), texts, counts)
    elif todo:
        model, tokenizer = load_model(
            model_source, revision, dtype=experiment.model.dtype, num_hidden_layers=num_hidden_layers
        )
        model.eval()
        if torch.cuda.is_available():
            model.to("cuda")
        generate_hf(
            model,
            tokenizer,
            [prompts[r["id"]] for r in todo],
            max_new_tokens=cfg.max_new_tokens[task],
            stop_strings=spec.stop_strings,
            batch_size=cfg.batch_size,
            prompt_template=template,
            on_batch=checkpoint,
        )
    seconds = time.perf_counter() - start
    outputs = [
        {
            "instruction": r["instruction"],
            "output": done[r["id"]]["output"],
            "generator": generator,
            "dataset": r["dataset"],
            "id": r["id"],
        }
        for r in records
    ]
    new_tokens = sum(done[r["id"]]["new_tokens"] for r in todo)
    write_json(out, outputs)
    write_json(
        Path(str(out) + ".meta.json"),
        {
            **settings,
            "model_description": resolve_model(model_source, revision).description,
            "n_items": len(records),
            "n_generated_this_run": len(todo),
            "seconds": round(seconds, 3),
            "new_tokens_this_run": new_tokens,
            "tokens_per_second": round(new_tokens / seconds, 2) if todo else None,
            "provenance": run_metadata(stage="generate", experiment=experiment.name),
        },
    )
    partial.unlink()
    logger.info("wrote %s (%d outputs, %.1f s)", out, len(outputs), seconds)
    return outputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate model outputs for an evaluation task.")
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--model", required=True, help="checkpoint folder or ual.models source")
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--generator", help="name written in the outputs (default: the model folder name)")
    parser.add_argument("--backend", choices=("auto", "hf", "vllm"), default="auto")
    parser.add_argument("--num-hidden-layers", type=int, help="keep only the first N layers (smoke runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    experiment = load_experiment(args.experiment)
    try:
        generate_outputs(
            experiment, args.task, args.model, args.out, args.generator, args.backend, args.num_hidden_layers
        )
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
