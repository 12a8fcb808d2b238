"""Greedy generation of model outputs for evaluation: transformers (batched, left padding) or vLLM.

Inputs: an experiment (which items: ``evaluate.sizes`` drawn by ``data.seed``; ``evaluate.max_new_tokens``,
``evaluate.batch_size``; ``model.dtype`` and ``model.prompt_template``), a model (a checkpoint folder of
``ual.train`` or any ``ual.models`` source) and a task of ``ual.tasks.TASKS``.
Outputs: ``--out outputs.json`` in alpaca_eval's model_outputs format, a JSON list of
{instruction, output, generator, dataset, id} in item order, and its sidecar ``outputs.json.meta.json``
(``identity`` = {experiment, scenario, variant, seed} of the command line, model, backend, decoding settings,
generated tokens and tokens/s, provenance).

    python -m ual.generate --experiment experiments/tiny.yaml --model results/tiny/seed0/train/mixed/ual \\
        --task gsm8k --scenario mixed --variant ual --seed 0 \\
        --out results/tiny/seed0/generate/mixed/ual/gsm8k.json [--generator NAME] [--backend auto|hf|vllm]

``--scenario``, ``--variant`` and ``--seed`` are recorded only (null when not given, e.g. for a base model).

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

The steps of ``generate_outputs``: ``plan_generation`` (items, prompts, the resume identity),
``_resume_partial`` (the partial file), ``_run_backend`` (transformers or vLLM) and ``_write_outputs``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ual.config import Experiment
from ual.experiment import load_experiment
from ual.prompts import encode_prompts
from ual.identity import IDENTITY_KEY, Identity, add_identity_arguments
from ual.provenance import changed_keys, sidecar_path, write_json
from ual.tasks import TASKS, get_task

logger = logging.getLogger(__name__)

__all__ = [
    "GenerationPlan", "generate_hf", "generate_outputs", "generate_vllm", "main", "plan_generation",
    "truncate_at_stop",
]


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


# ---- planning: the items, their prompts and the run's resume identity ---------------------------------


@dataclass(frozen=True)
class GenerationPlan:
    """What one run generates: the task's items and prompts, and the settings that identify the run."""

    task: Any  # the ual.tasks Task
    records: list[dict]  # the items, in output order
    prompts: dict[str, str]  # id -> prompt text
    prompt_hashes: dict[str, str]  # id -> _prompt_sha256 (resume: an item of a changed prompt is redone)
    settings: dict[str, Any]  # the resume identity: model content, decoding settings (module docstring)
    template: str  # the ual.prompts template the prompts are tokenised under
    tokenizer: Any
    model_source: str
    revision: str | None
    num_hidden_layers: int | None


def plan_generation(
    experiment: Experiment,
    task: str,
    model_source: str,
    generator: str | None = None,
    backend: str = "auto",
    num_hidden_layers: int | None = None,
) -> GenerationPlan:
    """The plan of generating ``task``'s outputs of ``model_source`` (loads the tokenizer, not the model)."""
    from ual.models import load_tokenizer, model_fingerprint

    spec, template = get_task(task), experiment.model.prompt_template
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
        "generator": generator or Path(model_source.rstrip("/")).name.removeprefix("package:"),
        "backend": _choose_backend(backend),
        "prompt_template": template,
        "prompt": spec.describe_prompt(template),
        "max_new_tokens": experiment.evaluate.max_new_tokens[task],
        "stop_strings": list(spec.stop_strings),
        "num_hidden_layers": num_hidden_layers,
        "batch_size": experiment.evaluate.batch_size,
    }
    tokenizer = load_tokenizer(model_source, revision)
    records = spec.records(experiment)
    prompts = {r["id"]: spec.render_prompt(r, template, tokenizer) for r in records}
    return GenerationPlan(
        task=spec, records=records, prompts=prompts,
        prompt_hashes={key: _prompt_sha256(prompt) for key, prompt in prompts.items()}, settings=settings,
        template=spec.prompt_template(template), tokenizer=tokenizer, model_source=model_source,
        revision=revision, num_hidden_layers=num_hidden_layers,
    )  # fmt: skip


# ---- resume: the partial file ----------------------------------------------------------------------------


def _partial_path(out: Path) -> Path:
    """The resume file of ``out``: ``<out>.partial.jsonl`` (module docstring)."""
    return out.with_name(out.name + ".partial.jsonl")


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


def _append_partial(path: Path, items: list[dict[str, Any]]) -> None:
    """Append finished items to the partial file, on disk before the next batch starts."""
    with path.open("a", encoding="utf-8") as stream:
        for item in items:
            stream.write(json.dumps(item, ensure_ascii=False) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


# ---- backends -------------------------------------------------------------------------------------------


def _run_backend(
    experiment: Experiment,
    plan: GenerationPlan,
    todo: list[dict],
    on_batch: Callable[[list[int], list[str], list[int]], None],
) -> None:
    """Generate the ``todo`` items with the plan's backend; ``on_batch(indices into todo, texts, counts)``
    receives every finished batch (vLLM: all at once)."""
    from ual.models import load_model, resolve_model

    prompts = [plan.prompts[r["id"]] for r in todo]
    settings, dtype = plan.settings, experiment.model.dtype
    if settings["backend"] == "vllm":
        if plan.num_hidden_layers is not None:
            raise ValueError("num_hidden_layers is not supported with the vllm backend")
        texts, counts = generate_vllm(
            resolve_model(plan.model_source, plan.revision).path,
            encode_prompts(prompts, plan.tokenizer, plan.template)["input_ids"],
            max_new_tokens=settings["max_new_tokens"],
            stop_strings=plan.task.stop_strings,
            dtype=dtype,
        )
        on_batch(list(range(len(todo))), texts, counts)
        return
    model, tokenizer = load_model(
        plan.model_source, plan.revision, dtype=dtype, num_hidden_layers=plan.num_hidden_layers
    )
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    generate_hf(
        model,
        tokenizer,
        prompts,
        max_new_tokens=settings["max_new_tokens"],
        stop_strings=plan.task.stop_strings,
        batch_size=settings["batch_size"],
        prompt_template=plan.template,
        on_batch=on_batch,
    )


# ---- writing ---------------------------------------------------------------------------------------------


def _write_outputs(
    experiment: Experiment,
    plan: GenerationPlan,
    out: Path,
    done: dict[str, Any],
    todo: list[dict],
    seconds: float,
    identity: Identity,
) -> list[dict]:
    """Write the outputs file and its sidecar (atomically); return the outputs."""
    from ual.models import resolve_model
    from ual.provenance import run_metadata

    generator = plan.settings["generator"]
    outputs = [
        {"instruction": r["instruction"], "output": done[r["id"]]["output"], "generator": generator,
         "dataset": r["dataset"], "id": r["id"]}
        for r in plan.records
    ]  # fmt: skip
    new_tokens = sum(done[r["id"]]["new_tokens"] for r in todo)
    write_json(out, outputs)
    write_json(
        sidecar_path(out),
        {
            IDENTITY_KEY: identity.as_record(),
            **plan.settings,
            "model_description": resolve_model(plan.model_source, plan.revision).description,
            "n_items": len(plan.records),
            "n_generated_this_run": len(todo),
            "seconds": round(seconds, 3),
            "new_tokens_this_run": new_tokens,
            "tokens_per_second": round(new_tokens / seconds, 2) if todo else None,
            "provenance": run_metadata(stage="generate", experiment=experiment.name),
        },
    )
    return outputs


def generate_outputs(
    experiment: Experiment,
    task: str,
    model_source: str,
    out: Path,
    generator: str | None = None,
    backend: str = "auto",
    num_hidden_layers: int | None = None,
    identity: Identity | None = None,
) -> list[dict]:
    """Generate ``task``'s outputs for the experiment's items and write ``out`` and its sidecar, resuming
    from ``out``'s partial file. ``identity`` is recorded in the sidecar (default: the experiment only)."""
    out = Path(out)
    plan = plan_generation(experiment, task, model_source, generator, backend, num_hidden_layers)
    partial = _partial_path(out)
    done = _resume_partial(partial, plan.settings, plan.prompt_hashes)
    todo = [r for r in plan.records if r["id"] not in done]
    logger.info("%s: %d items, %d already done (%s), %d to generate", task, len(plan.records), len(done),
                partial, len(todo))
    out.parent.mkdir(parents=True, exist_ok=True)
    if not partial.is_file():
        partial.write_text(json.dumps({"settings": plan.settings}) + "\n", encoding="utf-8")

    def checkpoint(indices: list[int], texts: list[str], counts: list[int]) -> None:
        items = [
            {"id": todo[i]["id"], "output": text, "new_tokens": count,
             "prompt_sha256": plan.prompt_hashes[todo[i]["id"]]}
            for i, text, count in zip(indices, texts, counts)
        ]  # fmt: skip
        _append_partial(partial, items)
        done.update((item["id"], item) for item in items)

    start = time.perf_counter()
    if todo:
        _run_backend(experiment, plan, todo, checkpoint)
    seconds = time.perf_counter() - start
    outputs = _write_outputs(
        experiment, plan, out, done, todo, seconds, identity or Identity(experiment=experiment.name)
    )
    partial.unlink()
    logger.info("wrote %s (%d outputs, %.1f s)", out, len(outputs), seconds)
    return outputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate model outputs for an evaluation task.")
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--model", required=True, help="checkpoint folder or ual.models source")
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    add_identity_arguments(parser)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--generator", help="name written in the outputs (default: the model folder name)")
    parser.add_argument("--backend", choices=("auto", "hf", "vllm"), default="auto")
    parser.add_argument("--num-hidden-layers", type=int, help="keep only the first N layers (smoke runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    experiment = load_experiment(args.experiment)
    identity = Identity(
        experiment=experiment.name, scenario=args.scenario, variant=args.variant, seed=args.seed
    )
    try:
        generate_outputs(
            experiment, args.task, args.model, args.out, args.generator, args.backend, args.num_hidden_layers,
            identity,
        )  # fmt: skip
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
