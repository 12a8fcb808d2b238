"""MATH with the MetaMath evaluation protocol (Hendrycks normalisation) plus math-verify as a second metric.

Protocol (meta-math/MetaMath ``eval_math.py`` @ fe667b14f9a4; docs/evaluation.md, "MATH"):
- prompt, stop strings and answer marker: MetaMath's, as GSM8K (``ual.tasks.metamath``);
- answer: the text after the LAST "The answer is: ", cut at the first ".\\n", stripped, one trailing "."
  removed; no marker: wrong;
- comparison: ``is_equiv`` = string equality after the Hendrycks ``strip_string`` normalisation, against the
  gold answer (``record["answer"]`` from ``ual.data``: the last brace-balanced ``\\boxed{}`` of the solution,
  or MATH-500's ``answer`` field). If normalisation fails on either side the raw strings are compared, as in
  the reference.

``strip_string`` is written here from the published algorithm of Hendrycks et al. (2021), "Measuring
Mathematical Problem Solving With the MATH Dataset", reference implementation hendrycks/math
``modeling/math_equivalence.py`` (also used verbatim by MetaMath's ``util.py``); the steps and their order
are those of the reference, listed in the function docstring.

Second metric (``math_verify``): HF math-verify 0.9 on the SAME extracted answer, so the two metrics differ
only in how answers are compared. math-verify's parser finds answers in LaTeX environments (``$...$``,
``\\[...\\]``, ``\\boxed{}``) or in plain numbers; the bare text after "The answer is: " is neither (given the
whole completion it extracted nothing from ``\\dfrac{1}{2}`` and read ``(1, 2)`` as ``2``: 391/500 on perfect
MATH-500 completions). So both sides are handed to ``parse`` in the form it reads whole: the extracted answer
and the gold, each wrapped as ``\\boxed{...}`` (``parse`` with its default extraction config, LaTeX first,
where a box is matched before anything else), then ``verify(gold, answer)``. No marker: wrong on both metrics.
It accepts equivalent forms the string rules miss (``0.5`` vs ``\\frac{1}{2}`` inside expressions,
``\\frac{2}{4}``, reordered sets, ...), so it is reported beside, never instead of, the MetaMath number.

Inputs/outputs as ``ual.tasks.gsm8k`` (without its cross-check); per-item records add
``correct_math_verify``. Items: the split ``evaluate.math_split`` of MATH. The task object is ``TASK``
(``ual.tasks.TASKS["math"]``); run through ``python -m ual.evaluate --task math``.
"""

from __future__ import annotations

import logging
from typing import Any

from ual.tasks.accuracy import accuracy_with_ci
from ual.tasks.metamath import ANSWER_MARKER, STOP_STRINGS, MetaMathTask

logger = logging.getLogger(__name__)

__all__ = [
    "TASK",
    "TASK_VERSION",
    "MathTask",
    "extract_answer",
    "is_equiv",
    "math_verify_correct",
    "score_items",
    "strip_string",
]

TASK_VERSION = 2


def extract_answer(completion: str) -> str | None:
    r"""The final answer string of a completion under the MetaMath MATH rule; None without the marker.

    >>> extract_answer("so x = 2.\nThe answer is: \\frac{1}{2}.\nDone.")
    '\\frac{1}{2}'
    >>> extract_answer("The answer is: 5") , extract_answer("no marker")
    ('5', None)
    """
    if ANSWER_MARKER not in completion:
        return None
    answer = completion.rsplit(ANSWER_MARKER, 1)[1].split(".\n", 1)[0].strip()
    answer = answer.removesuffix(".")
    return answer.strip()


# --------------------------------------------------------------------------- Hendrycks normalisation


def _fix_fracs(string: str) -> str:
    r"""Brace the arguments of ``\frac`` written without braces: ``\frac12`` -> ``\frac{1}{2}``,
    ``\frac1{2}`` -> ``\frac{1}{2}``, ``\frac{1}2`` is left alone (only the first argument is inspected)."""
    head, *parts = string.split("\\frac")
    out = head
    for part in parts:
        out += "\\frac"
        if not part:
            raise ValueError(f"'\\frac' without arguments in {string!r}")
        if part[0] == "{":
            out += part
            continue
        if len(part) < 2:
            return string  # the reference gives up on a one-character tail and keeps the input
        first, second, rest = part[0], part[1], part[2:]
        out += f"{{{first}}}" + (second if second == "{" else f"{{{second}}}") + rest
    return out


def _fix_a_slash_b(string: str) -> str:
    """``3/4`` (exactly two integers) -> ``\\frac{3}{4}``; anything else unchanged."""
    parts = string.split("/")
    if len(parts) != 2:
        return string
    try:
        numerator, denominator = int(parts[0]), int(parts[1])
    except ValueError:
        return string
    if string != f"{numerator}/{denominator}":
        return string
    return f"\\frac{{{numerator}}}{{{denominator}}}"


def _remove_right_units(string: str) -> str:
    r"""Drop a trailing unit written as ``\text{ unit}`` (with the space); more than one is an error."""
    if "\\text{ " not in string:
        return string
    parts = string.split("\\text{ ")
    if len(parts) != 2:
        raise ValueError(f"more than one '\\text{{ ' unit in {string!r}")
    return parts[0]


def _fix_sqrt(string: str) -> str:
    r"""``\sqrt3`` -> ``\sqrt{3}`` (one-character argument without braces)."""
    head, *parts = string.split("\\sqrt")
    out = head
    for part in parts:
        if not part:
            raise ValueError(f"'\\sqrt' without an argument in {string!r}")
        out += "\\sqrt" + (part if part.startswith("{") else f"{{{part[0]}}}" + part[1:])
    return out


def strip_string(string: str) -> str:
    r"""Hendrycks MATH answer normalisation, in the reference order:

    1. drop line breaks, ``\!`` and turn ``\\`` into ``\``; 2. ``tfrac``/``dfrac`` -> ``frac``;
    3. drop ``\left`` and ``\right``; 4. drop degrees ``^{\circ}``/``^\circ``; 5. drop ``\$``; 6. drop a
    right unit ``\text{ ...}``; 7. drop ``\%``; 8. leading-zero decimals (`` .5``, ``{.5``, ``.5`` ->
    ``0.5``); 9. a short left-hand side ``k = v`` (<= 2 characters) -> ``v``; 10. ``\sqrt3`` -> ``\sqrt{3}``;
    11. drop spaces; 12. brace ``\frac`` arguments; 13. ``0.5`` -> ``\frac{1}{2}``;
    14. ``a/b`` -> ``\frac{a}{b}``.

    >>> strip_string("\\dfrac{1}{2}") == strip_string("0.5") == strip_string("1/2") == "\\frac{1}{2}"
    True
    >>> strip_string("x = \\left( 3, 4 \\right)"), strip_string("10\\%"), strip_string("90^\\circ")
    ('(3,4)', '10', '90')
    """
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "")
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    sides = string.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        string = sides[1]
    string = _fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)


def is_equiv(prediction: str | None, gold: str | None) -> bool:
    """Hendrycks equivalence: equal after ``strip_string`` (raw equality if normalising fails).

    >>> is_equiv("\\\\frac12", "0.5"), is_equiv("3", "4"), is_equiv(None, "4")
    (True, False, False)
    """
    if prediction is None or gold is None:
        if prediction is None and gold is None:
            logger.warning("is_equiv: both answers are None")
            return True
        return False
    try:
        return strip_string(prediction) == strip_string(gold)
    except (ValueError, IndexError):
        return prediction == gold


# --------------------------------------------------------------------------- math-verify and scoring


def math_verify_correct(gold: str, answer: str | None) -> bool:
    r"""math-verify's verdict on an extracted answer (``extract_answer``; None: wrong), both sides boxed.

    >>> math_verify_correct("\\frac{1}{2}", "0.5"), math_verify_correct("(1,2)", "(1, 2)")
    (True, True)
    >>> math_verify_correct("3", "4"), math_verify_correct("3", None)
    (False, False)
    """
    from math_verify import parse, verify

    if answer is None:
        return False
    gold_parsed = parse(_boxed(gold))
    prediction = parse(_boxed(answer))
    if not gold_parsed or not prediction:
        return False
    return bool(verify(gold_parsed, prediction))


def _boxed(answer: str) -> str:
    """The form math-verify's parser reads whole: ``\\boxed{answer}``."""
    return "\\boxed{" + answer + "}"


def score_items(outputs: dict[str, str], records: list[dict]) -> list[dict]:
    """Per-item records for every gold record (``outputs`` maps record id -> completion)."""
    items = []
    for record in records:
        if record.get("answer") is None:
            raise ValueError(f"MATH record {record['id']}: no gold answer")
        completion = outputs[record["id"]]
        extracted = extract_answer(completion)
        items.append(
            {
                "id": record["id"],
                "question": record["instruction"],
                "output": completion,
                "extracted": extracted,
                "gold": record["answer"],
                "correct": extracted is not None and is_equiv(extracted, record["answer"]),
                "correct_math_verify": math_verify_correct(record["answer"], extracted),
                "has_marker": ANSWER_MARKER in completion,
            }
        )
    return items


class MathTask(MetaMathTask):
    """MATH (``evaluate.math_split``), MetaMath prompt and stop strings, scored by ``score_items``."""

    protocol = "MetaMath eval_math + Hendrycks is_equiv (docs/evaluation.md); second metric math-verify"

    def per_item(self, outputs: dict[str, str], records: list[dict]) -> list[dict]:
        return score_items(outputs, records)

    def more_metrics(self, items: list[dict]) -> dict[str, Any]:
        return {"math_verify": accuracy_with_ci([item["correct_math_verify"] for item in items])}

    def split_for(self, experiment: Any) -> str:
        return experiment.evaluate.math_split

    def item_set(self, experiment: Any) -> dict[str, Any]:
        return {"split": self.split_for(experiment)}

    def reference_label(self, experiment: Any) -> str:
        return f"MATH {self.split_for(experiment)} solutions"


TASK = MathTask(
    name="math",
    version=TASK_VERSION,
    dataset="math",
    split=None,  # evaluate.math_split
    stop_strings=STOP_STRINGS,
    match_key="id",
    label="MATH acc. (%)",
    low_entropy=True,
)
