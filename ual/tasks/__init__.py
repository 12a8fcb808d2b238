"""The evaluation tasks, one module per task, and ``TASKS``: the single source of task names.

A task (``ual.tasks.base.Task``) is one unit, as an lm-eval ``Task``: its items for an experiment and their
split, the data its scoring reads, the prompt of an item, its stop strings, its scoring (outputs -> metrics
and per-item records), its match key, its held-out references for the calibration analysis, how tables show
it, and its version. ``ual.generate`` and ``ual.evaluate`` (the CLIs), ``ual.inputs`` (what an experiment
reads), ``ual.analysis.references``, ``ual.report`` and the lm-eval generation check
(``ual/evaluate/lmeval_tasks``) ask the task through this registry and never branch on a task's name;
``ual.experiment`` checks the task names of an experiment (``evaluate.tasks``, the keys of ``evaluate.sizes``
and ``evaluate.max_new_tokens``) against it.

- ``gsm8k`` (``ual.tasks.gsm8k``) and ``math`` (``ual.tasks.hendrycks_math``): the MetaMath protocol, whose
  prompt, answer marker and stop strings live in ``ual.tasks.metamath``; GSM8K is also scored by lm-eval's
  stock gsm8k task (``ual.tasks.lmeval_gsm8k``) as a cross-check;
- ``alpacaeval`` (``ual.tasks.alpacaeval``): the model's template, judged by ``ual.judges``.

Dependencies point one way: ``ual.evaluate`` / ``ual.generate`` -> ``ual.tasks`` -> ``ual.prompts``,
``ual.provenance`` (and, inside functions, ``ual.data`` and ``ual.judges``). Importing ``ual.tasks`` loads
neither ``ual.config`` nor a heavy library (alpaca_eval, math-verify, lm-eval and datasets are imported when
used).

Extension point: a new task = a module here with a ``Task`` subclass instance ``TASK`` (``version`` =
its ``TASK_VERSION``), one entry in ``TASKS``, and its tests; experiments may then name it
(``tests/unit/test_tasks.py`` runs a toy task through inputs, scoring and the report's tables).
"""

from __future__ import annotations

from ual.tasks import alpacaeval, gsm8k, hendrycks_math
from ual.tasks.base import Task, TaskInput

__all__ = ["TASKS", "Task", "TaskInput", "get_task"]

TASKS: dict[str, Task] = {task.name: task for task in (alpacaeval.TASK, gsm8k.TASK, hendrycks_math.TASK)}


def get_task(name: str) -> Task:
    """The registered task ``name``; an unknown name is an error that lists the known tasks."""
    if name not in TASKS:
        raise KeyError(f"unknown task '{name}'; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
