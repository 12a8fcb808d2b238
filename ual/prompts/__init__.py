"""Versioned prompt templates (``<name>_v<N>.txt``); the version goes into every cache key.

- ``alpaca_v1`` / ``alpaca_input_v1``: the Stanford Alpaca template as used by MetaMath for training and
  evaluation (ends with "### Response:", no trailing newline; MetaMath's evaluation appends
  " Let's think step by step."). Used for base models (``model.prompt_template: alpaca``).

Changelog: v1 - initial.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def load_prompt(name: str) -> str:
    """Text of ``ual/prompts/<name>.txt`` (e.g. ``load_prompt("alpaca_v1")``)."""
    resource = files(__package__) / f"{name}.txt"
    if not resource.is_file():
        raise FileNotFoundError(f"no prompt template '{name}' in ual/prompts/")
    return resource.read_text(encoding="utf-8")


def render_alpaca(instruction: str, input: str = "", version: str = "v1") -> str:  # noqa: A002
    """The Alpaca prompt for one sample, with or without its ``input`` field.

    >>> render_alpaca("Add 2 and 3.").endswith("### Instruction:\\nAdd 2 and 3.\\n\\n### Response:")
    True
    """
    if input.strip():
        return load_prompt(f"alpaca_input_{version}").format(instruction=instruction, input=input)
    return load_prompt(f"alpaca_{version}").format(instruction=instruction)
