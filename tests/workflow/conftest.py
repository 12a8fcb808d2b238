"""Fixtures of the workflow tests: ``smoke_run``, the whole DAG of tests/workflow/smoke.yaml run locally once
per session (test_smoke.py checks it; test_slurm.py compares a SLURM run of part of it with it)."""

from __future__ import annotations

import os

import pytest
from smoke_workflow import new_workdir, snakemake


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_mirror):
    os.environ["UAL_DATA_MIRROR"] = str(data_mirror.resolve())  # the run changes directory
    work = new_workdir(tmp_path_factory.mktemp("smoke"))
    result = snakemake(work, "--cores", "2")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return work
