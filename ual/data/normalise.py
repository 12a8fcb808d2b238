"""Row normalisers: one upstream row (a dict with upstream field names) -> one record of the shared schema.

Record (a plain dict): ``id`` (stable content hash), ``dataset``, ``instruction``, ``input`` (may be ""),
``output``, ``answer`` (the gold final answer of math sets as a string, else None). Pure functions; a bad row
raises ``ValueError`` with the field, and the loader (``ual.data.load``) adds the file and line.

Normalisation choices:
- ``gsm8k`` solutions are rewritten MetaMath-style: calculator annotations ``<<48/2=24>>`` dropped and the
  final ``#### X`` line replaced by ``The answer is: X``; ``answer`` = X with thousands commas removed (also
  used in the rewritten line, so the training target and the gold answer agree).
- ``math``: ``answer`` = the last brace-balanced ``\\boxed{...}`` of the solution (test, 5,000 problems)
  or the upstream ``answer`` field (math500; the two agree on all 500 shared problems); ``output`` = the
  solution unchanged.
- ``alpaca_eval`` (split ``eval``): the 805 instructions in alpaca_eval's order, ``output`` = "" (the
  references come from ``ual.data.load_alpaca_eval_references``, in alpaca_eval's model_outputs format).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

__all__ = [
    "RECORD_KEYS",
    "alpaca",
    "alpaca_eval",
    "extract_boxed",
    "field",
    "gsm8k",
    "hendrycks_math",
    "metamathqa",
    "record_id",
    "rewrite_gsm8k_solution",
]

RECORD_KEYS = ("id", "dataset", "instruction", "input", "output", "answer")


def record_id(dataset: str, instruction: str, input: str, output: str) -> str:
    """Stable content hash of a record (first 16 hex digits of sha256).

    >>> record_id("gsm8k", "q", "", "a") == record_id("gsm8k", "q", "", "a")
    True
    """
    payload = json.dumps([dataset, instruction, input, output], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


_CALCULATOR = re.compile(r"<<[^<>]*>>")
_FINAL = re.compile(r"\n?####\s*(?P<answer>[^\n]*)\s*$")


def rewrite_gsm8k_solution(solution: str) -> tuple[str, str]:
    """GSM8K solution -> (MetaMath-style solution, answer).

    >>> rewrite_gsm8k_solution("She sold 48/2 = <<48/2=24>>24 clips.\\n#### 1,024")
    ('She sold 48/2 = 24 clips.\\nThe answer is: 1024', '1024')
    """
    match = _FINAL.search(solution)
    if match is None or not match.group("answer").strip():
        raise ValueError("solution has no final '#### <answer>' line")
    answer = match.group("answer").strip().replace(",", "")
    body = _CALCULATOR.sub("", solution[: match.start()]).rstrip()
    return f"{body}\nThe answer is: {answer}", answer


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def extract_boxed(solution: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``), brace-balanced; None if absent.

    >>> extract_boxed(r"so $\boxed{\frac{1}{2}}$ and not \boxed{3}.")
    '3'
    >>> extract_boxed(r"$\boxed{\left( 3, \frac{\pi}{2} \right)}$")
    '\\left( 3, \\frac{\\pi}{2} \\right)'
    >>> extract_boxed("no box") is None
    True
    """
    matches = list(_BOXED.finditer(solution))
    if not matches:
        return None
    rest = solution[matches[-1].end() :]
    depth, out = 1, []
    for char in rest:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return "".join(out).strip()
        out.append(char)
    return None  # unbalanced


def field(row: dict[str, Any], key: str, allow_empty: bool = False) -> str:
    """The string ``row[key]``; ValueError naming the field when it is missing, not a string, or empty."""
    if key not in row:
        raise ValueError(f"missing field '{key}'")
    value = row[key]
    if not isinstance(value, str):
        raise ValueError(f"field '{key}' must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValueError(f"field '{key}' is empty")
    return value


def _make(dataset: str, instruction: str, input: str, output: str, answer: str | None) -> dict:
    return {
        "id": record_id(dataset, instruction, input, output),
        "dataset": dataset,
        "instruction": instruction,
        "input": input,
        "output": output,
        "answer": answer,
    }


def alpaca(dataset: str, row: dict) -> dict:
    """Alpaca format: instruction, input (may be empty), output."""
    return _make(dataset, field(row, "instruction"), field(row, "input", True), field(row, "output"), None)


def metamathqa(dataset: str, row: dict) -> dict:
    """MetaMathQA: query, response ending in 'The answer is: X'."""
    response = field(row, "response")
    answer = response.rsplit("The answer is:", 1)[1].strip() if "The answer is:" in response else None
    return _make(dataset, field(row, "query"), "", response, answer)


def gsm8k(dataset: str, row: dict) -> dict:
    """GSM8K: question, answer (rewritten MetaMath-style, see the module docstring)."""
    output, answer = rewrite_gsm8k_solution(field(row, "answer"))
    return _make(dataset, field(row, "question"), "", output, answer)


def hendrycks_math(dataset: str, row: dict) -> dict:
    """MATH: problem, solution, and the answer field (math500) or the last boxed answer."""
    solution = field(row, "solution")
    if "answer" in row:
        answer = field(row, "answer")
    else:
        answer = extract_boxed(solution)
        if answer is None:
            raise ValueError("solution has no \\boxed{...} answer")
    return _make(dataset, field(row, "problem"), "", solution, answer)


def alpaca_eval(dataset: str, row: dict) -> dict:
    """AlpacaEval: the instruction only (the model writes the output)."""
    return _make(dataset, field(row, "instruction"), "", "", None)
