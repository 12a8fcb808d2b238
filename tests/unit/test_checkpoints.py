"""ual.checkpoints: resume from the newest complete checkpoint; incomplete ones set aside, others' dropped.

The folders are laid out as HF Trainer writes them (model.safetensors, optimizer.pt, trainer_state.json last;
DeepSpeed's ``latest`` + ``global_stepN/``) with real safetensors files. The resume of a real run with a
cut-off checkpoint is in tests/integration/test_train.py.

Run: python -m pytest tests/unit/test_checkpoints.py
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import save_file

from ual.checkpoints import checkpoint_problem, resume_checkpoint

IDENTITY = {"experiment": "tiny", "method": "ual", "seed": 0}


def make_checkpoint(out, step, *, state=True, deepspeed=False):
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"w": torch.full((4, 4), float(step))}, folder / "model.safetensors")
    if deepspeed:
        (folder / "latest").write_text(f"global_step{step}")
        (folder / f"global_step{step}").mkdir()
        (folder / f"global_step{step}" / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"x")
    else:
        torch.save({"state": {}}, folder / "optimizer.pt")
    if state:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return folder


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "train_run.json").write_text(json.dumps(IDENTITY))
    return folder


def test_the_newest_complete_checkpoint_is_resumed_and_the_cut_off_one_set_aside(out, caplog):
    make_checkpoint(out, 2)
    make_checkpoint(out, 4, state=False)  # killed before trainer_state.json
    with caplog.at_level(logging.WARNING, logger="ual.checkpoints"):
        chosen = resume_checkpoint(out, IDENTITY, out / "train_run.json")
    assert chosen == out / "checkpoint-2"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["checkpoint-2", "incomplete-checkpoint-4", "train_run.json"]
    assert "checkpoint-4 is incomplete (no trainer_state.json (the save was cut off))" in caplog.text


def test_checkpoint_problems_name_what_is_missing_or_unreadable(out):
    complete = make_checkpoint(out, 2)
    assert checkpoint_problem(complete) is None
    assert checkpoint_problem(make_checkpoint(out, 3, deepspeed=True)) is None
    truncated = make_checkpoint(out, 4)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "model.safetensors unreadable" in checkpoint_problem(truncated)
    no_optimizer = make_checkpoint(out, 6)
    (no_optimizer / "optimizer.pt").unlink()
    assert checkpoint_problem(no_optimizer) == "no optimizer state (optimizer.pt)"
    broken_state = make_checkpoint(out, 8)
    (broken_state / "trainer_state.json").write_text('{"global_step": 8')
    assert "trainer_state.json unreadable" in checkpoint_problem(broken_state)
    no_weights = make_checkpoint(out, 10)
    (no_weights / "model.safetensors").unlink()
    assert checkpoint_problem(no_weights).startswith("no model weights")


def test_nothing_complete_means_a_fresh_start_and_set_aside_names_never_collide(out):
    make_checkpoint(out, 2, state=False)
    (out / "incomplete-checkpoint-2").mkdir()  # set aside by an earlier attempt
    assert resume_checkpoint(out, IDENTITY, out / "train_run.json") is None
    assert (out / "incomplete-checkpoint-2.1").is_dir() and not (out / "checkpoint-2").exists()


def test_checkpoints_of_another_run_are_discarded_with_a_message_not_refused(out, caplog):
    make_checkpoint(out, 2)
    with caplog.at_level(logging.WARNING, logger="ual.checkpoints"):
        assert resume_checkpoint(out, {**IDENTITY, "seed": 1}, out / "train_run.json") is None
    assert not (out / "checkpoint-2").exists()
    assert "discarding 1 checkpoints of another run (seed differ): checkpoint-2" in caplog.text
    make_checkpoint(out, 2)
    (out / "train_run.json").unlink()  # no record of the run that wrote them
    assert resume_checkpoint(out, IDENTITY, out / "train_run.json") is None
    assert not (out / "checkpoint-2").exists()
