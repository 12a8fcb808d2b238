"""Prompts: the versioned template files, and the ONE place where a record becomes prompt text and token ids.

Training (``ual.collate``), generation (``ual.generate``, through the tasks of ``ual.tasks``) and the
hidden-state analysis all render and tokenise prompts here, so a prompt is the same text and the same ids in
training and at generation.

Files (``<name>_v<N>.txt``; the version goes into every cache key):
- ``alpaca_v1`` / ``alpaca_input_v1``: the Stanford Alpaca template as used by MetaMath for training and
  evaluation (ends with "### Response:", no trailing newline; MetaMath's evaluation prompt,
  ``ual.tasks.metamath.build_prompt``, appends " Let's think step by step.");
- ``elicit_uncertainty_v1``: the elicitation prompt of ``ual.elicit``.

Templates (``PROMPT_TEMPLATES``, selected by ``model.prompt_template``; MetaMath recipe, docs/method.md):
- ``alpaca`` (base models): prompt = ``render_alpaca(instruction, input)``, response =
  ``ALPACA_RESPONSE_SEPARATOR + output.strip()``. The separator is one space, the same boundary as MetaMath's
  evaluation prompt "### Response: Let's think step by step."; it is part of the first response token
  (byte-level BPE folds it into " Word"), so generation from the bare prompt starts where training did.
  The text holds no special tokens: the tokenizer adds its own (BOS if it has one).
- ``chat``: the tokenizer's chat template with one user turn (``instruction``, or ``instruction + "\\n\\n" +
  input``); prompt = that turn with ``add_generation_prompt=True``, response = the rest of the rendered
  conversation up to and including its last EOS (a trailing newline after EOS is not trained). The rendered
  text already holds the template's special tokens (BOS included where the template renders it), so the
  tokenizer adds none (``add_special_tokens=False``, as transformers' ``apply_chat_template(tokenize=True)``).

Token ids (``encode_prompts``, ``tokenize_prompt_response``): the prompt is tokenised alone, exactly as
generation feeds it to the model; the response ids are the rest of the tokenisation of prompt + response, so
they are the ids the model would generate after that prompt (for SentencePiece tokenizers this keeps
"▁Word" instead of a stray "▁" + "Word"). If a token merges across the boundary (the full tokenisation does
not start with the prompt's), the response is tokenised on its own and appended. EOS ends every response.

Extension point: a new template = one ``PromptTemplate`` in ``PROMPT_TEMPLATES`` (and its name in
``ModelConfig.prompt_template``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

__all__ = [
    "ALPACA_RESPONSE_SEPARATOR",
    "PROMPT_TEMPLATES",
    "PromptTemplate",
    "encode_prompts",
    "load_prompt",
    "render_alpaca",
    "render_example",
    "render_prompt",
    "tokenize_prompt_response",
    "user_turn",
]

ALPACA_RESPONSE_SEPARATOR = " "


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


def user_turn(record: dict) -> str:
    """The user message of a record in a chat: ``instruction``, then ``input`` after a blank line if any."""
    return record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")


@dataclass(frozen=True)
class PromptTemplate:
    """How a record becomes text under one template, and whether the tokenizer adds specials to that text."""

    name: str
    prompt: Callable[[dict, Any], str]  # (record, tokenizer) -> prompt text
    response: Callable[[dict, Any, str], str]  # (record, tokenizer, prompt) -> response text without EOS
    add_special_tokens: bool  # False when the rendered text already holds them (chat templates)


def _alpaca_prompt(record: dict, tokenizer: Any) -> str:
    return render_alpaca(record["instruction"], record.get("input") or "")


def _alpaca_response(record: dict, tokenizer: Any, prompt: str) -> str:
    return ALPACA_RESPONSE_SEPARATOR + record["output"].strip()


def _chat_messages(record: dict, tokenizer: Any) -> list[dict[str, str]]:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("model.prompt_template is 'chat' but the tokenizer has no chat template")
    return [{"role": "user", "content": user_turn(record)}]


def _chat_prompt(record: dict, tokenizer: Any) -> str:
    messages = _chat_messages(record, tokenizer)
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _chat_response(record: dict, tokenizer: Any, prompt: str) -> str:
    messages = _chat_messages(record, tokenizer)
    full = tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": record["output"].strip()}], tokenize=False
    )
    if not full.startswith(prompt):
        raise ValueError(
            f"record {record['id']}: the chat template does not extend the prompt with the answer"
        )
    response = full[len(prompt) :]
    eos = tokenizer.eos_token
    if eos and eos in response:  # train up to EOS, not the template's newline after it
        response = response[: response.rindex(eos)]
    return response


PROMPT_TEMPLATES: dict[str, PromptTemplate] = {
    "alpaca": PromptTemplate("alpaca", _alpaca_prompt, _alpaca_response, add_special_tokens=True),
    "chat": PromptTemplate("chat", _chat_prompt, _chat_response, add_special_tokens=False),
}


def _template(name: str) -> PromptTemplate:
    if name not in PROMPT_TEMPLATES:
        raise ValueError(f"unknown prompt template '{name}'; known: {sorted(PROMPT_TEMPLATES)}")
    return PROMPT_TEMPLATES[name]


def render_prompt(record: dict, template: str, tokenizer: Any = None) -> str:
    """The prompt text of one record under ``template`` (``chat`` needs the tokenizer)."""
    return _template(template).prompt(record, tokenizer)


def render_example(record: dict, tokenizer: Any, template: str) -> tuple[str, str]:
    """(prompt text, response text without EOS) of one training record under ``template``."""
    spec = _template(template)
    prompt = spec.prompt(record, tokenizer)
    return prompt, spec.response(record, tokenizer, prompt)


def encode_prompts(texts: str | Sequence[str], tokenizer: Any, template: str, **kwargs: Any) -> Any:
    """``tokenizer(texts, **kwargs)`` with the special tokens of ``template``: the ids every stage feeds the
    model for prompts rendered under it (``kwargs``: ``padding``, ``return_tensors``, ...)."""
    return tokenizer(texts, add_special_tokens=_template(template).add_special_tokens, **kwargs)


def tokenize_prompt_response(record: dict, tokenizer: Any, template: str) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids ending in EOS) of one training record; see the module docstring."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; training needs one to end responses")
    prompt, response = render_example(record, tokenizer, template)
    prompt_ids = encode_prompts(prompt, tokenizer, template)["input_ids"]
    full_ids = encode_prompts(prompt + response, tokenizer, template)["input_ids"]
    if full_ids[: len(prompt_ids)] == prompt_ids:
        response_ids = full_ids[len(prompt_ids) :]
    else:  # a token spans the boundary: keep the prompt's own ids, tokenise the response alone
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if not response_ids or response_ids[-1] != tokenizer.eos_token_id:
        response_ids = response_ids + [tokenizer.eos_token_id]
    return prompt_ids, response_ids
