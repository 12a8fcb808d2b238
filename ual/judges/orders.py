"""Which output the judge sees first: both orders or alpaca_eval's random one, and the judge's position bias.

A pairwise judge may prefer a position rather than an output (SmolLM2 as the local judge gives the first-shown
output P("m") of about 0.26 whatever it reads). ``evaluate.judge_orders``:
- ``both``: every pair is judged twice through alpaca_eval's own annotator, once with the reference shown
  first and once with the model output shown first (``is_randomize_output_order: false`` in the resolved
  annotator config, so alpaca_eval's cache is keyed by the order shown), and the two preferences are
  averaged. A judge that always prefers one position then gives every pair exactly 1.5, a draw, and cannot
  move the win rate;
- ``random``: alpaca_eval's default, one order per instruction drawn by its
  ``RandomSwitchTwoColumnsProcessor`` (seeded by the instruction); its leaderboards were computed this way;
- null: ``random`` for an unchanged stock alpaca_eval judge on its own API (leaderboard-comparable), ``both``
  for every other judge (the local judge, any judge at ``judge_base_url``, another ``judge_model``, a config
  folder of your own).

Position bias = the share of preference, over the orders judged, that went to the second-shown output
(``preference - 1`` when output_2 was shown second): 50 % for a judge that reads only content, 100 % for one
that always picks the second. With both orders it is measured cleanly (content cancels); with one random
order it is confounded with content (an unbiased judge shows about 50 % only when the draw is balanced).

Preferences follow alpaca_eval: 1 = the reference (output_1) wins, 2 = the model (output_2) wins, floats in
between for weighted judges, NaN = the reply could not be parsed. A pair counts as judged only when every
order it was shown in has a parsed preference; no order's verdict stands in for a missing one.

Inputs: reference-first pairs (a DataFrame with instruction, output_1, output_2, generator_1, generator_2) and
alpaca_eval's annotations of them. Outputs: one row per pair (``preference`` and the per-order preferences,
``second_shown_share``) and the position-bias summary. Pure functions; ``ual.judges.judge`` calls them.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = [
    "ORDERS",
    "SWITCH_COLUMN",
    "both_orders_rows",
    "combine_both_orders",
    "combine_random_order",
    "position_bias",
    "resolve_orders",
]

ORDERS = ("both", "random")
# alpaca_eval's SinglePairwiseAnnotator names the column of its RandomSwitchTwoColumnsProcessor so.
SWITCH_COLUMN = "is_switched_outputs"
PAIR_KEYS = ["instruction", "output_1", "output_2"]


def resolve_orders(judge_orders: str | None, stock_unchanged: bool) -> str:
    """``evaluate.judge_orders``, its null resolved by the rule in the module docstring."""
    if judge_orders is not None:
        return judge_orders
    return "random" if stock_unchanged else "both"


def both_orders_rows(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs as shown: reference first (as given), then model first (outputs and generators swapped)."""
    swapped = pairs.rename(
        columns={"output_1": "output_2", "output_2": "output_1", "generator_1": "generator_2",
                 "generator_2": "generator_1"}
    )
    return pd.concat([pairs, swapped[pairs.columns]], ignore_index=True)


def _lookup(annotations: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    return {
        (row["instruction"], row["output_1"], row["output_2"]): float(row["preference"])
        for row in annotations[[*PAIR_KEYS, "preference"]].to_dict("records")
    }


def combine_both_orders(pairs: pd.DataFrame, annotations: pd.DataFrame) -> pd.DataFrame:
    """One row per pair from the annotations of both orders (``both_orders_rows(pairs)``).

    ``preference_reference_first`` / ``preference_model_first`` are in alpaca_eval's orientation (2 = the
    model wins) whatever was shown first; ``preference`` is their mean, NaN when either is missing.
    """
    found = _lookup(annotations)
    rows = []
    for row in pairs.to_dict("records"):
        ref_first = found.get((row["instruction"], row["output_1"], row["output_2"]), math.nan)
        shown = found.get((row["instruction"], row["output_2"], row["output_1"]), math.nan)
        model_first = 3.0 - shown  # that judgement saw the reference second: flip it back (NaN stays NaN)
        rows.append(
            {
                **row,
                "preference": (ref_first + model_first) / 2,
                "preference_reference_first": ref_first,
                "preference_model_first": model_first,
                # reference first: the model was second; model first: the reference was second
                "second_shown_share": ((ref_first - 1) + (2 - model_first)) / 2,
                "orders_unparsed": [
                    order for order, value in (("reference_first", ref_first), ("model_first", model_first))
                    if math.isnan(value)
                ],
            }
        )
    return pd.DataFrame(rows)


def combine_random_order(pairs: pd.DataFrame, annotations: pd.DataFrame, switched: pd.Series) -> pd.DataFrame:
    """One row per pair from alpaca_eval's single random order; ``switched`` (by instruction) says where the
    model output was shown first."""
    found = _lookup(annotations)
    rows = []
    for row in pairs.to_dict("records"):
        preference = found.get((row["instruction"], row["output_1"], row["output_2"]), math.nan)
        model_first = bool(switched[row["instruction"]])
        rows.append(
            {
                **row,
                "preference": preference,
                "shown_first": "model" if model_first else "reference",
                "second_shown_share": (2 - preference) if model_first else (preference - 1),
                "orders_unparsed": ["model_first" if model_first else "reference_first"]
                if math.isnan(preference) else [],
            }
        )
    return pd.DataFrame(rows)


def position_bias(pairs: pd.DataFrame, orders: str) -> dict[str, Any]:
    """The share of preference (in %) that went to the second-shown output, over the judged pairs, with its
    standard error over pairs (ddof 1); null when no pair was judged."""
    shares = pairs["second_shown_share"].dropna()
    note = (
        "share of preference to the second-shown output over both orders: 50 % = no position bias"
        if orders == "both"
        else "one random order per pair (alpaca_eval's): position and content are confounded; "
        "judge_orders: both measures it"
    )
    if shares.empty:
        return {"position_bias": None, "position_bias_standard_error": None, "position_bias_note": note}
    error = float(shares.std(ddof=1) / math.sqrt(len(shares))) if len(shares) > 1 else None
    return {
        "position_bias": 100.0 * float(shares.mean()),
        "position_bias_standard_error": None if error is None else 100.0 * error,
        "position_bias_note": note,
    }
