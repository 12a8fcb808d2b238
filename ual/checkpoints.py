"""Which ``checkpoint-N`` folder of an interrupted ``ual.train`` run to resume from.

Inputs: a training output folder (``--out`` of ``ual.train``) holding HF Trainer checkpoints ``checkpoint-N``
and ``train_run.json`` (the identity of the run that wrote them), and the identity of the run about to start.
Outputs: the checkpoint to resume from (or None), after tidying the folder:
- checkpoints of another run (other experiment sections, method, seed, epsilon file or base model) are
  discarded (deleted) with a warning: they cannot continue this run;
- an incomplete checkpoint (a save cut off by a kill: weights, optimizer or trainer state missing or
  unreadable) is set aside, renamed ``incomplete-checkpoint-N`` (kept for inspection, never resumed, not
  removed with the others when the run ends), with a warning; the newest complete one is resumed.
Nothing here is fatal: at worst the run starts from step 0.

Used by ``python -m ual.train`` (see there); no command of its own. Unlike transformers'
``get_last_checkpoint`` (the newest folder, complete or not) it resumes only complete checkpoints. The folder
layout it reads is transformers 5.24.0's and DeepSpeed 0.19.8's (``ual.compat`` lists it).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from ual.provenance import changed_keys

logger = logging.getLogger(__name__)

__all__ = ["checkpoint_problem", "checkpoints", "resume_checkpoint"]

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")  # transformers' PREFIX_CHECKPOINT_DIR-<global step>
TRAINER_STATE = "trainer_state.json"  # written last by Trainer._save_checkpoint


def checkpoints(out: Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``out``, newest (highest N) first."""
    found = [p for p in out.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)] if out.is_dir() else []
    return sorted(found, key=lambda p: -int(_CHECKPOINT.match(p.name).group(1)))


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            handle.keys()
    except (SafetensorError, OSError) as exc:
        return f"{path.name} unreadable ({exc})"
    return None


def _weights_problem(folder: Path) -> str | None:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as exc:
            return f"{index.name} unreadable ({exc})"
        for shard in shards:
            problem = "missing" if not (folder / shard).is_file() else _safetensors_problem(folder / shard)
            if problem:
                return f"weight shard {shard}: {problem}"
        return None
    if (folder / "model.safetensors").is_file():
        return _safetensors_problem(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file() and (folder / "pytorch_model.bin").stat().st_size > 0:
        return None
    return "no model weights (model.safetensors, its index, or pytorch_model.bin)"


def _optimizer_problem(folder: Path) -> str | None:
    latest = folder / "latest"  # DeepSpeed: optimizer and model states in the folder named by `latest`
    if latest.is_file():
        tag = folder / latest.read_text().strip()
        complete = tag.is_dir() and any(tag.glob("*optim_states.pt"))
        return None if complete else f"DeepSpeed states {tag.name} missing"
    return None if (folder / "optimizer.pt").is_file() else "no optimizer state (optimizer.pt)"


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from (None: complete): trainer state, weights, optimizer state."""
    state = folder / TRAINER_STATE
    if not state.is_file():
        return f"no {TRAINER_STATE} (the save was cut off)"
    try:
        step = json.loads(state.read_text())["global_step"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        return f"{TRAINER_STATE} unreadable ({exc})"
    if not isinstance(step, int):
        return f"{TRAINER_STATE}: global_step {step!r} is not an integer"
    return _weights_problem(folder) or _optimizer_problem(folder)


def _set_aside(folder: Path, problem: str) -> Path:
    target = folder.with_name(f"incomplete-{folder.name}")
    number = 1
    while target.exists():
        target, number = folder.with_name(f"incomplete-{folder.name}.{number}"), number + 1
    folder.rename(target)
    logger.warning("%s is incomplete (%s): set aside as %s, not resumed", folder, problem, target.name)
    return target


def resume_checkpoint(out: Path, identity: dict[str, Any], run_file: Path) -> Path | None:
    """The newest complete checkpoint in ``out`` of the run ``identity`` (as recorded in ``run_file``).

    Checkpoints of another run are deleted and incomplete ones set aside, each with a warning (module
    docstring); None when nothing is left to resume.
    """
    found = checkpoints(out)
    if not found:
        return None
    previous = json.loads(run_file.read_text()) if run_file.is_file() else None
    if previous != identity:
        changed, names = ", ".join(changed_keys(previous, identity)), ", ".join(p.name for p in found)
        logger.warning("%s: discarding %d checkpoints of another run (%s differ): %s", out, len(found),
                       changed, names)
        for folder in found:
            shutil.rmtree(folder)
        return None
    for folder in found:
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        _set_aside(folder, problem)
    return None
