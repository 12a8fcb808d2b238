"""OpenAI client classes that alpaca_eval's client configs can name (``client_class``).

``KeylessOpenAI``: the pinned ``openai`` client for a local server that needs no key (llama.cpp, vLLM or
SGLang started without ``--api-key``): it neither reads ``OPENAI_API_KEY`` nor sends an ``Authorization``
header, so no key (real or dummy) is needed or leaked to the server. ``ual.judges`` names it in the client
config it writes when ``evaluate.judge_base_url`` is set and ``evaluate.judge_api_key_env`` is null.
"""

from __future__ import annotations

from typing import Any

import openai

__all__ = ["KeylessOpenAI"]


class KeylessOpenAI(openai.OpenAI):
    """``openai.OpenAI`` without credentials (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("api_key", None)
        # api_key="" (not None): the environment is not read; _enforce_credentials=False: no key is required
        super().__init__(api_key="", _enforce_credentials=False, **kwargs)

    def _prepare_options(self, options: Any) -> Any:
        options = super()._prepare_options(options)
        # the pinned client refuses to send a request without an Authorization header unless it is omitted
        options.headers = {**(options.headers or {}), "Authorization": openai.Omit()}
        return options
