"""The judges' error class, in a leaf module: ``ual.judges`` itself imports alpaca_eval (seconds).

``ual.tasks.alpacaeval_references`` raises it without loading the judges; ``ual.judges`` re-exports it.
"""

__all__ = ["AlpacaEvalError"]


class AlpacaEvalError(ValueError):
    """Bad AlpacaEval input or judge output; the message names the file."""
