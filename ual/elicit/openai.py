"""The ``openai`` elicitor backend: any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, llama.cpp).

One chat completion per sample (greedy, ``max_tokens``, ``logprobs`` with ``top_logprobs`` alternatives):

- Score from log-probabilities (read from "logprobs"), the quantity the ``hf`` backend reads: the answers
  "1".."10" among the ``top_logprobs`` alternatives at the answer position (the first reply token),
  renormalised, *whatever token was sampled* (a reply "The score is 3" is scored from the distribution at
  "The"). No answer token among them: the sample is **missing** (answer mass 0), never guessed.
- "10" on digit-splitting servers (Llama, Mistral, Qwen, SmolLM2 served by vLLM, SGLang or llama.cpp):
  when "1" has probability there and no one-token "10" is among the alternatives, P("0" | "1") is read
  from the reply's second token if the greedy reply began with "1", else from a **second request that
  continues the reply after "1"** (the chat with an assistant message "1", ``max_tokens`` 1):
  llama.cpp continues a final assistant message by default, vLLM and SGLang with
  ``continue_final_message`` (sent as extra body fields, which llama.cpp ignores). Measured against
  llama.cpp serving SmolLM2: the continued request gives the same P("0" | "1") as ``/v1/completions`` on
  the rendered prompt + "1" (identical to 1e-12). ``elicit.ten_continuation`` (default: on when
  ``base_url`` is set) turns it off for endpoints with a one-token "10" and no prefill (OpenAI's GPT-4).
- No logprobs in the response (a server that drops them): the integer parsed from the reply text
  (read from "text"); warned once per run and counted (``RunStats.no_logprobs``).
- Keys: read only from the environment variable ``api_key_env``; ``api_key_env: null`` with a
  ``base_url`` is a keyless local server (no Authorization header is sent). Error texts are scrubbed of
  the key before they are stored.
- Retries: tenacity on 429, 5xx, timeouts and connection errors, exponential backoff with jitter, and at
  least the server's ``Retry-After`` / ``retry-after-ms`` when it sends one. Waits are recorded in
  ``OpenAIElicitor.retry_waits``.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import threading
import time
from typing import Any

from ual.config import ElicitConfig
from ual.elicit.core import (
    Reply,
    answer_mass,
    answer_of,
    build_elicit_prompt,
    elicitor_name,
    expected_score,
    parse_uncertainty,
    scorer_name,
    split_ten,
    ten_continuation,
)

__all__ = ["OpenAIElicitor", "build", "retry_after_seconds", "score_from_logprobs"]

logger = logging.getLogger(__name__)


def _alternatives(position: Any) -> list[tuple[str, float]]:
    return [(alt.token, math.exp(alt.logprob)) for alt in (position.top_logprobs or [])]


def score_from_logprobs(
    first: list[tuple[str, float]], after_one: list[tuple[str, float]] | None
) -> tuple[float | None, dict[str, float]]:
    """Score and answer probabilities from the (token, probability) alternatives at the answer position
    and, for a split "10", those after "1" (None: not split, or not asked).

    >>> score_from_logprobs([("9", 0.55), ("1", 0.45)], [("0", 1.0)])[0]
    9.45
    >>> score_from_logprobs([("The", 0.9), ("You", 0.1)], None)
    (None, {})
    """
    mass = answer_mass(first)
    if after_one is not None:
        mass = split_ten(mass, min(1.0, sum(p for token, p in after_one if token == "0")))
    return expected_score(mass), {k: float(f"{p:.6g}") for k, p in mass.items() if p > 0}


def retry_after_seconds(exc: BaseException) -> float:
    """The wait a server asks for in ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date), or 0."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000.0)
        value = headers.get("retry-after")
        if not value:
            return 0.0
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return 0.0


def _retryable(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, openai.APIConnectionError | openai.RateLimitError):  # incl. APITimeoutError
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


class OpenAIElicitor:
    """Chat completions against any OpenAI-compatible endpoint, retried with backoff (module docstring)."""

    batch_size = 1
    source = "verbalized"

    def __init__(self, cfg: ElicitConfig, name: str | None = None):
        import openai

        self._key = None
        if cfg.api_key_env:
            self._key = os.environ.get(cfg.api_key_env)
            if not self._key:
                raise ValueError(f"environment variable {cfg.api_key_env} (elicit.api_key_env) is not set")
        elif cfg.base_url is None:
            raise ValueError("elicit.api_key_env must name the environment variable that holds the API key")
        # max_retries=0: tenacity owns the retry policy, so it is the same for every error kind.
        # A keyless server: the pinned openai client needs _enforce_credentials=False to send no key.
        self.client = openai.OpenAI(
            base_url=cfg.base_url,
            api_key=self._key,
            timeout=cfg.timeout_s,
            max_retries=0,
            **({} if self._key else {"_enforce_credentials": False}),
        )
        self._headers = {} if self._key else {"Authorization": openai.Omit()}
        self.cfg, self.name, self.concurrency = cfg, name or elicitor_name(cfg), cfg.concurrency
        self.scorer, self.continue_ten = scorer_name(cfg), ten_continuation(cfg)
        self.wants_logprobs = cfg.logprobs
        self.retry_waits: list[float] = []  # seconds waited before each retry (what tenacity slept)
        self.sleep = time.sleep
        self._warned = threading.Event()

    def build_input(self, record: dict, prompt_version: str) -> str:
        return build_elicit_prompt(record, prompt_version)

    def _wait(self, state: Any) -> float:
        from tenacity import wait_exponential_jitter

        first = self.cfg.retry_wait_s
        backoff = wait_exponential_jitter(initial=first, max=60.0, jitter=first)
        return max(backoff(state), retry_after_seconds(state.outcome.exception()))

    def _request(self, messages: list[dict], max_tokens: int, **extra: Any) -> Any:
        from tenacity import Retrying, retry_if_exception, stop_after_attempt

        kwargs: dict[str, Any] = {
            "model": self.cfg.model,
            "temperature": 0,
            "max_tokens": max_tokens,
            "messages": messages,
            "extra_headers": self._headers,
        }
        if self.cfg.logprobs:
            kwargs.update(logprobs=True, top_logprobs=self.cfg.top_logprobs)
        if extra:
            kwargs["extra_body"] = extra

        def before_sleep(state: Any) -> None:
            self.retry_waits.append(state.upcoming_sleep)
            logger.debug("retry %d after %s", state.attempt_number, type(state.outcome.exception()).__name__)

        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.cfg.max_retries + 1),
            wait=self._wait,
            sleep=lambda seconds: self.sleep(seconds),
            reraise=True,
            before_sleep=before_sleep,
        )
        return retrying(self.client.chat.completions.create, **kwargs)

    def _cost(self, completion: Any) -> float:
        usage = completion.usage
        if usage is None:
            return 0.0
        return (
            usage.prompt_tokens * self.cfg.usd_per_1m_input_tokens
            + usage.completion_tokens * self.cfg.usd_per_1m_output_tokens
        ) / 1e6

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text  # never write the key anywhere

    def score(self, inputs: list[str]) -> list[Reply]:
        return [self._score_one(prompt) for prompt in inputs]

    def _score_one(self, prompt: str) -> Reply:
        messages, requests, cost = [{"role": "user", "content": prompt}], 0, 0.0
        try:
            requests += 1
            completion = self._request(messages, self.cfg.max_tokens)
            cost += self._cost(completion)
            choice = completion.choices[0]
            content = choice.message.content or ""
            tokens = getattr(getattr(choice, "logprobs", None), "content", None)
            if not (self.cfg.logprobs and tokens and tokens[0].top_logprobs):
                if self.cfg.logprobs and not self._warned.is_set():
                    self._warned.set()
                    logger.warning(
                        "%s returned no logprobs: scores are parsed from the reply text (read from 'text'); "
                        "they are counted in the run's n_no_logprobs", self.cfg.base_url or "the API"
                    )
                score = parse_uncertainty(content)
                return Reply(self._scrub(content), score, "text", None, None, requests, cost)
            first = _alternatives(tokens[0])
            after_one = None
            split = answer_mass(first)["1"] > 0 and not any(answer_of(t) == "10" for t, _ in first)
            if split and self.continue_ten:
                if answer_of(tokens[0].token) == "1" and len(tokens) > 1 and tokens[1].top_logprobs:
                    after_one = _alternatives(tokens[1])  # the greedy reply already continued after "1"
                else:
                    requests += 1
                    continued = self._request(
                        [*messages, {"role": "assistant", "content": "1"}],
                        1,
                        continue_final_message=True,
                        add_generation_prompt=False,
                    )
                    cost += self._cost(continued)
                    after = getattr(continued.choices[0].logprobs, "content", None)
                    if not after or not after[0].top_logprobs:
                        raise ValueError("the continuation after '1' came back without logprobs")
                    after_one = _alternatives(after[0])
        except Exception as exc:  # noqa: BLE001 - recorded as missing with its reason, retried on rerun
            error = self._scrub(f"{type(exc).__name__}: {exc}")[:300]
            return Reply(raw="", score=None, requests=requests, cost_usd=cost, error=error)
        score, probs = score_from_logprobs(first, after_one)
        return Reply(
            raw=self._scrub(content),
            score=score,
            read_from="logprobs",
            probs=probs,
            answer_mass=float(f"{sum(probs.values()):.6g}"),
            requests=requests,
            cost_usd=cost,
        )


def build(cfg: ElicitConfig) -> OpenAIElicitor:
    """The ``openai`` elicitor of an experiment."""
    return OpenAIElicitor(cfg)
