"""Know the judge's bill before paying it: requests, tokens and cost of an experiment's AlpacaEval judging.

    python -m ual.evaluate --estimate --experiment experiments/paper_llama2-7b.yaml [--outputs F]

Nothing is called (no judge, no API, no network): the annotator config is resolved without side effects
(``ual.judges.annotator_entry``) and its prompt template is filled with alpaca_eval's own ``make_prompts``.
- requests = judged models x items x orders (``evaluate.judge_orders``: both = 2 per pair) / annotator
  ``batch_size``; judged models = seeds x the trained (scenario, variant) pairs of the workflow
  (``ual.variants.trained_variants``). Cached annotations are not subtracted (a fresh run's bill).
- prompt tokens: the filled prompt of every pair in every order shown. The model outputs do not exist before
  generation, so each is assumed equal to the reference output of its instruction (stated in the output);
  ``--outputs F`` gives the bill of judging that one outputs file instead. Counted with
  ``evaluate.judge_tokenizer`` (a ``ual.models`` source, or ``tiktoken:<model>`` when tiktoken's encoding file
  is cached), else the local judge's own tokenizer, both on the prompt rendered by the tokenizer's chat
  template, else approximated as the elicitor's bill does (``ual.elicit.estimate``): ceil(characters of the
  messages / 4) + 7 tokens of chat format per request (stated in the output).
- completion tokens: the annotator's ``max_tokens`` per request (an upper bound: 1 for the weighted AlpacaEval
  2 judge, 100 for AlpacaEval 1's ranking judge); the local judge generates none (one forward pass).
- cost: tokens x ``evaluate.judge_usd_per_1m_input_tokens`` / ``judge_usd_per_1m_output_tokens``.

Inputs: an ``Experiment`` (the data mirror for the instructions and references). Output: a JSON-able dict.
It sits in the evaluate stage, above the tasks, the judges and the variants it counts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from alpaca_eval.utils import make_prompts

from ual.data import load_records
from ual.elicit.estimate import CHARS_PER_TOKEN, CHAT_OVERHEAD_TOKENS  # one rule of thumb for both bills
from ual.judges import annotator_entry, judge_orders
from ual.judges.local import COMPLETIONS, render_judge_prompt
from ual.judges.orders import both_orders_rows
from ual.tasks import TASKS
from ual.tasks.alpacaeval_references import load_references
from ual.variants import trained_variants

__all__ = ["estimate_judging", "judged_models", "token_counter"]


def _chat_text(prompt: str) -> str:
    """What an API judge is sent of an alpaca_eval prompt: the message contents (ChatML markers become the
    chat format's own tokens, counted by ``CHAT_OVERHEAD_TOKENS``)."""
    from alpaca_eval.utils import prompt_to_chatml

    stripped = prompt.strip()
    if stripped.startswith("<|im_start|>") and stripped.endswith("<|im_end|>"):
        return "\n".join(m["content"] for m in prompt_to_chatml(stripped))
    return stripped


def token_counter(cfg: Any, local: bool) -> tuple[Any, str]:
    """(texts -> token counts, how they are counted) for ``evaluate.judge_tokenizer`` (module docstring)."""
    spec = cfg.judge_tokenizer
    if spec and spec.startswith("tiktoken:"):
        import tiktoken

        encoding = tiktoken.encoding_for_model(spec.removeprefix("tiktoken:"))
        return (
            lambda texts: [len(encoding.encode(_chat_text(t))) + CHAT_OVERHEAD_TOKENS for t in texts],
            f"tiktoken {encoding.name} + {CHAT_OVERHEAD_TOKENS} per request",
        )
    if spec or local:
        from ual.models import load_tokenizer

        tokenizer = load_tokenizer(spec or cfg.judge_model)

        def count(texts: list[str]) -> list[int]:
            rendered = [render_judge_prompt(t, tokenizer) for t in texts]  # the judge's own chat template
            return [len(tokenizer.encode(t, add_special_tokens=False)) for t in rendered]

        return count, f"tokenizer of {spec or cfg.judge_model}, its chat template applied"
    return (
        lambda texts: [math.ceil(len(_chat_text(t)) / CHARS_PER_TOKEN) + CHAT_OVERHEAD_TOKENS for t in texts],
        f"approximated: characters / {CHARS_PER_TOKEN:g} + {CHAT_OVERHEAD_TOKENS} per request "
        "(no evaluate.judge_tokenizer)",
    )


def judged_models(experiment: Any) -> int:
    """How many models the workflow judges: every seed of every trained (scenario, variant)."""
    train, eps = experiment.train, experiment.epsilon
    pairs = trained_variants(experiment.data.scenarios, train.methods, eps.eps_max, eps.ablation_eps_max)
    return len(train.seeds) * len(pairs)


def _prompts(entry: dict[str, Any], pairs: pd.DataFrame, orders: str) -> list[str]:
    """The prompts alpaca_eval's annotator makes of these reference-first pairs, in every order shown."""
    shown = both_orders_rows(pairs) if orders == "both" else pairs
    template = Path(entry["prompt_template"]).read_text()
    prompts, _ = make_prompts(shown, template, batch_size=int(entry.get("batch_size", 1)))
    return list(prompts)


def estimate_judging(experiment: Any, outputs: dict[str, str] | None = None) -> dict[str, Any]:
    """The judge's requests, tokens and cost for the experiment's AlpacaEval evaluation (module docstring);
    with ``outputs`` (instruction -> model output, one outputs file), the bill of judging that one model."""
    cfg = experiment.evaluate
    source, annotator, entry, identity = annotator_entry(cfg)
    orders = judge_orders(cfg, source, entry, identity)
    local = entry.get("fn_completions") in COMPLETIONS
    instructions = [r["instruction"] for r in load_records("alpaca_eval", "eval", experiment.data.mirror)]
    references, _ = load_references(cfg.reference_outputs, experiment.data.mirror, instructions)
    by_instruction = {row["instruction"]: row["output"] for row in references}
    chosen = [r["instruction"] for r in TASKS["alpacaeval"].records(experiment)]
    answers = [(outputs or by_instruction)[instruction] for instruction in chosen]  # model ~ reference
    pairs = pd.DataFrame({"instruction": chosen, "output_1": [by_instruction[i] for i in chosen],
                          "output_2": answers})
    prompts = _prompts(entry, pairs, orders)
    count, method = token_counter(cfg, local)
    n_models = 1 if outputs is not None else judged_models(experiment)
    requests = n_models * len(prompts)
    prompt_tokens = n_models * sum(count(prompts))
    max_tokens = 0 if local else int(entry["completions_kwargs"].get("max_tokens", 2048))
    completion_tokens = requests * max_tokens
    cost = (prompt_tokens * cfg.judge_usd_per_1m_input_tokens
            + completion_tokens * cfg.judge_usd_per_1m_output_tokens) / 1e6
    return {
        "experiment": experiment.name,
        "judge": cfg.judge,
        "annotator": annotator,
        "judge_model": entry["completions_kwargs"].get("model_name"),
        "judge_orders": orders,
        "reference_outputs": cfg.reference_outputs,
        "judged_models": n_models,
        "items_per_model": len(chosen),
        "requests": requests,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "completion_tokens_note": "local judge: none generated" if local
        else f"upper bound: max_tokens {max_tokens} per request",
        "token_count": method,
        "model_output_length": "from the outputs file" if outputs is not None
        else "assumed equal to the reference output of the same instruction",
        "usd_per_1m_tokens": [cfg.judge_usd_per_1m_input_tokens, cfg.judge_usd_per_1m_output_tokens],
        "cost_usd": round(cost, 2),
    }
