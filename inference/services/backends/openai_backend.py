"""SleepVLM behind an OpenAI-compatible chat-completions server (vLLM), as the authors serve it.

Settings: base_url and model (required; the host one of INFERENCE_BASE_URL_HOSTS); api_key_env (name of
the environment variable holding the key, one of INFERENCE_API_KEY_ENVS, default OPENAI_API_KEY; unset or
empty sends "EMPTY", which vLLM accepts); concurrency (requests in flight, default 8); timeout_s (per
request, default 120); max_retries (default 3) with exponential backoff backoff_s * 2**attempt (default
1 s) on connection errors, timeouts, 408, 429 and 5xx; system_prompt_file (under INFERENCE_PROMPT_DIRS);
temperature, top_p, max_new_tokens (sent as max_tokens). Token log-probabilities are requested
(`logprobs`): the stage's probability is read from them; a server that sends none leaves it empty.

A query that still fails yields RawOutput(text="", error=...) instead of raising, so one bad query
does not lose the batch.
"""
from __future__ import annotations

import base64
import os
import time
from concurrent.futures import ThreadPoolExecutor

from openai import APIConnectionError, APIStatusError, OpenAI, OpenAIError

from inference.services.backends.allowlist import DEFAULT_API_KEY_ENV
from inference.services.backends.base import USER_TURN, Backend, EpochQuery, RawOutput, stage_probability


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, APIConnectionError)  # includes APITimeoutError


def _describe(exc: Exception) -> str:
    if isinstance(exc, APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    if isinstance(exc, OpenAIError):
        return f"{type(exc).__name__}: {exc}"
    return f"unusable response: {type(exc).__name__}: {exc}"  # e.g. a 200 whose body is not JSON


def user_content(images: tuple[bytes, bytes, bytes]) -> list[dict]:
    """The user turn as chat-completions content parts, images as base64 PNG data URLs."""
    parts = []
    for kind, value in USER_TURN:
        if kind == "text":
            parts.append({"type": "text", "text": value})
        else:
            url = "data:image/png;base64," + base64.b64encode(images[value]).decode("ascii")
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _stage_probability(choice) -> float | None:
    """The stage's probability from the choice's token log-probabilities; None when the server sent none."""
    tokens = getattr(getattr(choice, "logprobs", None), "content", None)
    if not tokens:
        return None
    return stage_probability([(token.token, token.logprob) for token in tokens])


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, settings: dict):
        super().__init__(settings)
        missing = [key for key in ("base_url", "model") if not self.settings.get(key)]
        if missing:
            raise ValueError(f"openai backend: missing required setting(s) {', '.join(missing)}")
        self.base_url = str(self.settings["base_url"])
        self.model = str(self.settings["model"])
        self.api_key_env = self.settings.get("api_key_env") or DEFAULT_API_KEY_ENV
        self.concurrency = int(self.settings.get("concurrency", 8))
        self.timeout_s = float(self.settings.get("timeout_s", 120))
        self.max_retries = int(self.settings.get("max_retries", 3))
        self.backoff_s = float(self.settings.get("backoff_s", 1.0))
        if self.concurrency < 1 or self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_s < 0:
            raise ValueError("openai backend: need concurrency >= 1, timeout_s > 0, max_retries >= 0, backoff_s >= 0")

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "base_url": self.base_url, "model": self.model}

    def predict(self, queries: list[EpochQuery]) -> list[RawOutput]:
        if not queries:
            return []
        system = self.system_prompt()
        decoding = self.decoding()
        request = {
            "model": self.model,
            "temperature": decoding["temperature"],
            "top_p": decoding["top_p"],
            "max_tokens": decoding["max_new_tokens"],
            "logprobs": True,
        }
        # Retries are ours (configurable backoff); the client's own are off.
        client = OpenAI(base_url=self.base_url, api_key=os.environ.get(self.api_key_env) or "EMPTY",
                        timeout=self.timeout_s, max_retries=0)
        with client, ThreadPoolExecutor(max_workers=min(self.concurrency, len(queries))) as pool:
            return list(pool.map(lambda query: self._query(client, request, system, query), queries))

    def _query(self, client: OpenAI, request: dict, system: str, query: EpochQuery) -> RawOutput:
        if query.images is None:
            return RawOutput(query.epoch_id, text="", error="query has no images")
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": user_content(query.images)},
        ]
        for attempt in range(self.max_retries + 1):
            try:
                response = client.chat.completions.create(messages=messages, **request)
            except (OpenAIError, ValueError) as exc:
                error = _describe(exc)
                if not _retryable(exc):
                    return RawOutput(query.epoch_id, text="", error=error)
                if attempt < self.max_retries:
                    time.sleep(self.backoff_s * 2**attempt)
                continue
            content = response.choices[0].message.content if getattr(response, "choices", None) else None
            if not isinstance(content, str):
                return RawOutput(query.epoch_id, text="", error="unusable response: no choices[0].message.content")
            return RawOutput(query.epoch_id, text=content, probability=_stage_probability(response.choices[0]))
        return RawOutput(query.epoch_id, text="", error=f"{error} (after {self.max_retries + 1} attempts)")
