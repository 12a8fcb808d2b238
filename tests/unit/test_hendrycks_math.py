"""MATH under the MetaMath protocol: extraction, Hendrycks normalisation, math-verify, mirror gold answers."""

from __future__ import annotations

import pytest

from ual.tasks import hendrycks_math as hm


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("Thus x = 2.\nThe answer is: 2", "2"),
        ("The answer is: \\frac{1}{2}.", "\\frac{1}{2}"),  # one trailing full stop removed
        ("The answer is: 5.\nSo we are done.", "5"),  # cut at the first ".\n"
        ("The answer is: 3.14", "3.14"),  # a decimal point is not a sentence end
        ("The answer is: 1\nThe answer is: (2, 3)", "(2, 3)"),  # the last marker wins
        ("The answer is:   7  ", "7"),
        ("The answer is: \\boxed{5}", "\\boxed{5}"),  # MetaMath does not unbox (math-verify does)
        ("The answer is 5", None),  # missing marker
        ("no answer at all", None),
    ],
)
def test_extract_answer_edge_cases(completion, expected):
    assert hm.extract_answer(completion) == expected


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("\\frac{1}{2}", "\\frac{1}{2}"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),  # dfrac / tfrac -> frac
        ("\\tfrac12", "\\frac{1}{2}"),  # unbraced arguments
        ("\\frac1{72}", "\\frac{1}{72}"),
        ("0.5", "\\frac{1}{2}"),
        ("3/4", "\\frac{3}{4}"),  # a/b with integers
        ("x/4", "x/4"),  # not integers: unchanged
        ("\\sqrt3", "\\sqrt{3}"),
        ("2\\sqrt{3}", "2\\sqrt{3}"),
        ("\\left( 1, 2 \\right)", "(1,2)"),
        ("90^\\circ", "90"),
        ("90^{\\circ}", "90"),
        ("50\\%", "50"),
        ("\\$18.50", "18.50"),
        ("10\\text{ cm}", "10"),  # right unit with "\text{ "
        ("x = 5", "5"),  # short left-hand side dropped
        ("xyz = 5", "xyz=5"),  # long left-hand side kept
        (".5", "\\frac{1}{2}"),  # leading zero added, then 0.5 -> 1/2
        ("\\{.5\\}", "\\{0.5\\}"),
        ("a\\!b", "ab"),
        ("1\n2", "12"),
        ("", ""),
    ],
)
def test_strip_string_follows_the_hendrycks_steps(raw, normalised):
    assert hm.strip_string(raw) == normalised


@pytest.mark.parametrize(
    ("prediction", "gold", "equal"),
    [
        ("\\frac12", "\\dfrac{1}{2}", True),
        ("0.5", "\\frac{1}{2}", True),
        ("1/2", "\\frac{1}{2}", True),
        ("\\left(3, \\frac{\\pi}{2}\\right)", "(3,\\frac{\\pi}{2})", True),
        ("5\\text{ inches}", "5", True),
        ("5 \\text{ a} \\text{ b}", "5 \\text{ a} \\text{ b}", True),  # normalising fails: raw comparison
        ("5 \\text{ a} \\text{ b}", "5", False),
        ("2", "3", False),
        ("\\frac{2}{4}", "\\frac{1}{2}", False),  # no algebra in the string rules
        ("\\boxed{5}", "5", False),
        (None, "5", False),
    ],
)
def test_is_equiv(prediction, gold, equal):
    assert hm.is_equiv(prediction, gold) is equal


@pytest.mark.parametrize(
    ("gold", "answer", "correct"),
    [
        # held-out forms that the bare text after the marker used to lose (parsed whole as \boxed{...})
        ("\\frac{1}{2}", "\\frac12", True),
        ("\\frac{1}{2}", "\\dfrac{1}{2}", True),
        ("\\sqrt{2}", "\\sqrt2", True),
        ("(1,2)", "(1, 2)", True),  # whole interval, not the last number 2
        ("(1,2)", "2", False),
        ("\\frac{1}{2}", "0.5", True),
        ("\\frac{2}{4}", "$\\frac{1}{2}$", True),  # algebraic equivalence; a $...$ answer still parses
        ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", True),
        ("5", "\\boxed{5}", True),  # an answer that boxes itself
        ("3", "4", False),
        ("3", None, False),  # no marker: wrong, as on the MetaMath metric
    ],
)
def test_math_verify_metric(gold, answer, correct):
    assert hm.math_verify_correct(gold, answer) is correct


def test_math_verify_reads_the_extracted_answer_not_the_whole_completion():
    records = [{"id": "a", "instruction": "q", "answer": "\\frac{1}{2}"}]
    # a boxed answer without the marker is wrong on both metrics (the same extraction feeds both)
    (item,) = hm.score_items({"a": "so the result is $\\boxed{0.5}$"}, records)
    assert (item["correct"], item["correct_math_verify"]) == (False, False)
    (item,) = hm.score_items({"a": "We get $x = 3$ first.\nThe answer is: \\dfrac{1}{2}"}, records)
    assert (item["correct"], item["correct_math_verify"]) == (True, True)


def test_boxed_gold_extraction_handles_nesting():
    from ual.data import extract_boxed

    assert extract_boxed("$\\boxed{\\frac{1}{\\sqrt{2}}}$") == "\\frac{1}{\\sqrt{2}}"
    assert extract_boxed("\\boxed{1} and \\fbox{\\{2, 3\\}}") == "\\{2, 3\\}"
    assert extract_boxed("\\boxed{unbalanced") is None


@pytest.mark.parametrize("split", ["math500", "test"])
def test_gold_answers_of_the_mirror_score_100_percent_and_corrupted_ones_0(data_mirror, split):
    from ual.data import load_records

    records = load_records("math", split, data_mirror)
    assert len(records) == {"math500": 500, "test": 5000}[split]
    failed = [
        r["answer"]
        for r in records
        if not hm.is_equiv(hm.extract_answer(f"Work.\nThe answer is: {r['answer']}"), r["answer"])
    ]
    # One gold of the 5,000 ends with a full stop, which MetaMath's extraction strips from every answer.
    assert failed == ([] if split == "math500" else ["\\frac{7}{5} + \\frac{1}{5} i."])
    # Corrupt as -(answer): a suffix can hide behind a dropped "\text{ unit}", a prefix before "x=".
    wrong = [hm.is_equiv(hm.extract_answer(f"The answer is: -({r['answer']})"), r["answer"]) for r in records]
    assert not any(wrong)


def test_perfect_metamath_completions_of_math500_score_500_on_both_metrics(data_mirror):
    from ual.data import load_records

    records = load_records("math", "math500", data_mirror)
    outputs = {r["id"]: f"Some work.\nThe answer is: {r['answer']}" for r in records}
    items = hm.score_items(outputs, records)
    assert sum(i["correct"] for i in items) == 500
    assert sum(i["correct_math_verify"] for i in items) == 500  # 391 when it parsed the whole completion
    # and it is not accepting anything: -(gold) is right only where it equals the gold (0), and for the one
    # equation gold, where math-verify 0.9 compares "x=5" and "-(x=5)" as equal
    wrong = {r["id"]: f"The answer is: -({r['answer']})" for r in records}
    accepted = {i["gold"] for i in hm.score_items(wrong, records) if i["correct_math_verify"]}
    assert accepted == {"0", "x=5"}


def test_score_items_records_both_metrics():
    records = [{"id": "a", "instruction": "q", "answer": "\\frac{1}{2}"}]
    items = hm.score_items({"a": "The answer is: 0.5"}, records)
    assert items == [
        {
            "id": "a",
            "question": "q",
            "output": "The answer is: 0.5",
            "extracted": "0.5",
            "gold": "\\frac{1}{2}",
            "correct": True,
            "correct_math_verify": True,
            "has_marker": True,
        }
    ]
