"""The GSM8K cross-check: ual's scorer, MetaMath's verbatim, lm-eval's stock strict-match and flexible-extract
on hand-written outputs, with their known disagreements, and the cross-check table built from them.

Run: python -m pytest tests/unit/test_crosscheck.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ual.report import collect, tables
from ual.tasks import TASKS, gsm8k

pytest.importorskip("lm_eval")
LMEVAL_DIR = Path(__file__).resolve().parents[2] / "ual/evaluate/lmeval_tasks"

# (completion, gold) -> verdicts of (ual, MetaMath verbatim, lm-eval strict-match, lm-eval flexible-extract)
CASES = [
    ("3 + 15 = 18.\nThe answer is: 18", 18, (True, True, False, True)),  # strict-match needs "#### "
    ("She makes 18 dollars.\n#### 18", 18, (False, False, True, True)),  # GSM8K's reference format
    ("The answer is: 18.00", 18, (True, True, False, False)),  # lm-eval compares strings, not numbers
    ("The answer is: 17.5", 18, (True, True, False, False)),  # MetaMath rounds (half to even: 18)
    ("The answer is: 54/3", 18, (True, True, False, False)),  # MetaMath evaluates a/b; flexible reads "3"
    ("Janet makes 18 dollars a day.", 18, (False, False, False, True)),  # no marker: only flexible accepts
    ("The answer is: 18 eggs, 2 left", 18, (True, True, False, False)),  # flexible takes the LAST number
    ("The answer is: 1,450,000", 1450000, (True, False, False, True)),  # ual's thousands-group deviation
    ("The answer is: $18.", 18, (True, True, False, True)),
    ("The answer is: 17", 18, (False, False, False, False)),
]
SCORERS = ("metamath", "lmeval_strict_match", "lmeval_flexible_extract")


@pytest.fixture(scope="module")
def items():
    return gsm8k.score_items(_outputs(), _records())


def _records() -> list[dict]:
    return [{"id": str(i), "instruction": f"q{i}", "answer": str(g)} for i, (_, g, _) in enumerate(CASES)]


def _outputs() -> dict[str, str]:
    return {str(i): completion for i, (completion, _, _) in enumerate(CASES)}


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0][:30] for c in CASES])
def test_the_four_scorers_disagree_where_their_rules_differ(items, index):
    item = items[index]
    verdicts = (item["correct"], *(item["crosscheck"][s]["correct"] for s in SCORERS))
    assert verdicts == CASES[index][2]


def test_what_each_scorer_extracted(items):
    extracted = {s: [item["crosscheck"][s]["extracted"] for item in items] for s in SCORERS}
    assert extracted["metamath"][7] == 1450 and items[7]["extracted"] == 1450000
    assert extracted["lmeval_strict_match"][:2] == ["[invalid]", "18"]  # lm-eval's fallback for no match
    assert extracted["lmeval_flexible_extract"][2:7] == ["18.00", "17.5", "3", "18", "2"]


def test_task_metrics_carry_every_scorer_and_the_table_shows_them_side_by_side(items, tmp_path):
    files = []
    for variant in ("sft", "ual"):
        out = tmp_path / variant / "gsm8k.json"
        out.parent.mkdir()
        metrics = TASKS["gsm8k"].score(_outputs(), _records(), None, out, tmp_path / "outputs.json")
        assert {s: m["n_correct"] for s, m in metrics["crosscheck"].items()} == {
            "metamath": 6, "lmeval_strict_match": 1, "lmeval_flexible_extract": 5}
        assert metrics["n_correct"] == 7
        run = {"task": "gsm8k", "identity": {"experiment": "unit", "scenario": "mixed", "variant": variant, "seed": 0}}
        out.write_text(json.dumps({**metrics, **run}))
        files.append(out)
    other = tmp_path / "math.json"  # a task without a crosscheck adds no row
    other.write_text(json.dumps({"task": "math", "metric": "accuracy", "accuracy": 0.5, **run}))
    table = tables.crosscheck_table(collect.read_crosscheck([*files, other]), ["mixed", "low"])
    assert table["row"].tolist() == ["SFT", "UAL"]  # ls and the low scenario were not run: no rows
    ual = table.set_index("row").loc["UAL"]
    assert ual["items"] == "10"
    assert [ual[label].split(" ± ")[0] for label in tables.CROSSCHECK_COLUMNS.values()] == [
        "70.00", "60.00", "10.00", "50.00"]
    assert "lm-eval strict-match" in table.columns and "needs '#### N'" in table.attrs["note"]


def test_metrics_with_a_bad_crosscheck_are_named(tmp_path):
    bad = tmp_path / "gsm8k.json"
    run = {"task": "gsm8k", "metric": "accuracy", "accuracy": 0.5, "ci_low": 0.4, "ci_high": 0.6,
           "identity": {"experiment": "unit", "scenario": "mixed", "variant": "ual", "seed": 0}}
    bad.write_text(json.dumps({**run, "crosscheck": [0.5]}))
    with pytest.raises(ValueError, match=r"gsm8k\.json: field 'crosscheck' is not an object of scorers"):
        collect.read_crosscheck([bad])
    bad.write_text(json.dumps({**run, "crosscheck": {"metamath": {"accuracy": 0.5}}}))
    with pytest.raises(ValueError, match=r"gsm8k\.json: crosscheck scorer 'metamath' lacks 'accuracy' or 'ci_low'"):
        collect.read_crosscheck([bad])


# Completions by gold g for GSM8K test items 0-8 (golds 18, 3, 70000, 540, 20, 64, 260, 160, 45) and item 611
# (gold 1450000), with the verdicts of (ual, MetaMath verbatim, strict-match, flexible-extract).
TEMPLATES = [
    (lambda g: f"3 + 15 = {g}.\nThe answer is: {g}", (True, True, False, True)),
    (lambda g: f"So {g} in all.\n#### {g}", (False, False, True, True)),
    (lambda g: f"The answer is: {g}.00", (True, True, False, False)),
    (lambda g: f"The answer is: {g}.4", (True, True, False, False)),
    (lambda g: f"The answer is: {3 * g}/3", (True, True, False, False)),
    (lambda g: f"She makes {g} dollars a day.", (False, False, False, True)),
    (lambda g: f"The answer is: {g} eggs, 2 left", (True, True, False, False)),
    (lambda g: f"The answer is: ${g}.", (True, True, False, True)),
    (lambda g: f"The answer is: {g + 1}", (False, False, False, False)),
    (lambda g: f"The answer is: {g:,}", (True, False, False, True)),
]
ITEMS = [*range(9), 611]


def test_lmeval_own_pipeline_on_the_generation_task_gives_our_crosscheck_verdicts(data_mirror):
    """lm-eval's evaluator (filters, metric, aggregation) runs ual_gsm8k_generation on canned completions: its
    strict-match and flexible-extract verdicts are the ones ual.tasks.gsm8k records. The model is lm-eval's
    DummyLM answering from a table: generation itself is compared in tests/integration/."""
    import lm_eval
    from lm_eval.models.dummy import DummyLM
    from lm_eval.tasks import TaskManager

    from ual.data import load_records
    from ual.tasks.metamath import build_prompt

    records = [load_records("gsm8k", "test", data_mirror)[i] for i in ITEMS]
    completions = {
        build_prompt(r["instruction"]): template(int(r["answer"]))
        for r, (template, _) in zip(records, TEMPLATES, strict=True)
    }

    class TableLM(DummyLM):
        tokenizer = None  # DummyLM's would be downloaded from the hub; a table needs none

        def generate_until(self, requests, disable_tqdm: bool = False):
            assert all(tuple(r.arguments[1]["until"]) == TASKS["gsm8k"].stop_strings for r in requests)
            return [completions[r.arguments[0]] for r in requests]

    task = "ual_gsm8k_generation"
    results = lm_eval.simple_evaluate(
        model=TableLM(), tasks=[task], samples={task: ITEMS}, log_samples=True, bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(LMEVAL_DIR), include_defaults=False),
        metadata={"mirror": str(data_mirror)},
    )
    ours = gsm8k.score_items({r["id"]: completions[build_prompt(r["instruction"])] for r in records}, records)
    by_id = {item["id"]: item for item in ours}
    lmeval = {(s["doc"]["id"], s["filter"]): s for s in results["samples"][task]}
    assert len(lmeval) == 2 * len(ITEMS)
    for record, item, (_, expected) in zip(records, ours, TEMPLATES, strict=True):
        strict, flexible = (lmeval[(record["id"], name)] for name in ("strict-match", "flexible-extract"))
        assert (strict["exact_match"], flexible["exact_match"]) == expected[2:]  # lm-eval's own verdicts
        assert (item["correct"], item["crosscheck"]["metamath"]["correct"]) == expected[:2]
        assert by_id[record["id"]]["crosscheck"]["lmeval_strict_match"]["extracted"] == strict["filtered_resps"][0]
        assert item["crosscheck"]["lmeval_flexible_extract"]["correct"] == expected[3]
    assert results["results"][task]["exact_match,flexible-extract"] == 0.5
