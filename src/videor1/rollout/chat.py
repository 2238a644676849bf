"""The HTTP client of OpenAI-compatible chat-completions endpoints (`videor1 serve`, vLLM, …).

`ChatClient` sends requests with retries: connection errors, timeouts, 408, 429 and 5xx are retried with
exponential back-off and jitter (or after the server's Retry-After); any other 4xx is the request's
fault and raises `EndpointError` at once with the server's message. `chat_many` sends a list of
conversations with bounded concurrency, keeping their order, a failure returned in its place.

The `endpoint` engine (`videor1.rollout.endpoint`) generates through it; evaluation, annotation and the
judge use it directly.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 120.0  # seconds: the longest wait a server's Retry-After can impose
RETRIED = (408, 429)  # besides 5xx: the request may succeed later; any other 4xx is the request's fault
API_KEY_VARIABLES = ("VIDEOR1_API_KEY", "OPENAI_API_KEY")


def env_api_key() -> str | None:
    """The endpoint's API key from $VIDEOR1_API_KEY, else $OPENAI_API_KEY (None: send none)."""
    return next((os.environ[name] for name in API_KEY_VARIABLES if os.environ.get(name)), None)


def with_served_model(config):
    """`config` (a pydantic config with `endpoint` and `endpoint_model`) with the endpoint's model named:
    when not given, the server's first model, asked for now, so that the settings a resumed run must
    match pin the model, not only the URL. `EndpointError` when the server cannot say."""
    if config.endpoint is None or config.endpoint_model is not None:
        return config
    served = ChatClient(config.endpoint, api_key=env_api_key()).model
    return config.model_copy(update={"endpoint_model": served})


class EndpointError(Exception):
    """A request that failed for good: the server's message and HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message, self.status = message, status

    @property
    def transient(self) -> bool:
        """The server was unreachable or overloaded (no answer, 408, 429, 5xx): the request itself may
        be fine, so a later run should send it again rather than record it as failed."""
        return self.status is None or self.status in RETRIED or self.status >= 500


@dataclass
class ChatReply:
    text: str
    completion_tokens: int
    finish_reason: str


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asks to wait (Retry-After: seconds or an HTTP date), if it says."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value)))  # inf / nan / huge values: capped
    except ValueError:
        pass
    try:
        wait = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        return min(MAX_RETRY_AFTER, max(0.0, wait))
    except (TypeError, ValueError):
        return None


def _server_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return str(message or response.text[:500] or response.reason_phrase)


def check_base_url(base_url: str) -> None:
    """ValueError unless `base_url` is an http(s) URL with a host (a wrong one would be "retried" as if
    the server were down: httpx raises UnsupportedProtocol, a TransportError, on every attempt)."""
    parts = urlsplit(base_url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"endpoint {base_url!r} must be an http:// or https:// URL with a host, "
                         "e.g. http://127.0.0.1:8000/v1")


class ChatClient:
    """Chat completions against `base_url` (with or without the trailing /v1)."""

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, max_retries: int = 4, backoff: float = 1.0, concurrency: int = 4):
        if concurrency < 1 or max_retries < 0 or backoff < 0:
            raise ValueError("concurrency must be >= 1, max_retries and backoff >= 0")
        check_base_url(base_url)
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else f"{base}/v1"
        self.max_retries, self.backoff, self.concurrency = max_retries, backoff, concurrency
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._model, self._model_lock = model, threading.Lock()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs) -> dict:
        """The JSON answer of one request, retried on transient failures; EndpointError when it fails."""
        for attempt in range(self.max_retries + 1):
            wait = None
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as error:  # connection refused / reset, timeouts
                problem, status = f"{type(error).__name__}: {error}", None
            else:
                if response.is_success:
                    try:
                        return response.json()
                    except ValueError:
                        raise EndpointError(f"{self.base_url}{path}: the answer is not JSON",
                                            response.status_code) from None
                status = response.status_code
                problem = f"HTTP {status}: {_server_message(response)}"
                if status not in RETRIED and status < 500:
                    raise EndpointError(f"{self.base_url}{path}: {problem}", status)
                wait = _retry_after(response)
            if attempt == self.max_retries:
                raise EndpointError(f"{self.base_url}{path}: {problem} (after {attempt + 1} attempts)",
                                    status)
            if wait is None:
                wait = self.backoff * 2**attempt * random.uniform(0.5, 1.5)
            log.debug("%s%s: %s; retrying in %.2f s", self.base_url, path, problem, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def models(self) -> list[str]:
        """The model names the endpoint serves (GET /v1/models)."""
        return [card["id"] for card in self._request("GET", "/models").get("data", [])]

    @property
    def model(self) -> str:
        """The model asked for: the one given, else the first the endpoint lists."""
        with self._model_lock:
            if self._model is None:
                names = self.models()
                if not names:
                    raise EndpointError(f"{self.base_url}/models lists no model")
                self._model = names[0]
            return self._model

    def chat(self, messages: list[dict], *, max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
             seed: int | None = None, top_k: int | None = None) -> ChatReply:
        """One completion of `messages`; EndpointError when it cannot be had."""
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature, "top_p": top_p}
        if seed is not None:
            body["seed"] = seed
        if top_k is not None:
            body["top_k"] = top_k
        answer = self._request("POST", "/chat/completions", json=body)
        try:
            choice = answer["choices"][0]
            return ChatReply(text=choice["message"]["content"] or "",
                             completion_tokens=int(answer.get("usage", {}).get("completion_tokens", 0)),
                             finish_reason=str(choice.get("finish_reason")))
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as error:  # e.g. "usage": null
            raise EndpointError(f"{self.base_url}/chat/completions: unexpected answer ({error!r})") from None

    def chat_many(self, conversations: list[list[dict]], *, max_tokens: int, temperature: float = 0.0,
                  top_p: float = 1.0, seeds: Sequence[int] | None = None, top_k: int | None = None
                  ) -> list[ChatReply | EndpointError]:
        """`chat` on each conversation, `concurrency` at a time, in order; conversation i gets seeds[i].
        A request that fails for good is returned as its EndpointError, the others go on."""
        if seeds is not None and len(seeds) != len(conversations):
            raise ValueError(f"{len(seeds)} seeds for {len(conversations)} conversations")

        def one(i: int) -> ChatReply | EndpointError:
            try:
                return self.chat(conversations[i], max_tokens=max_tokens, temperature=temperature,
                                 top_p=top_p, seed=None if seeds is None else seeds[i], top_k=top_k)
            except EndpointError as error:
                return error

        if len(conversations) <= 1:
            return [one(i) for i in range(len(conversations))]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations)),
                                thread_name_prefix="chat") as pool:
            return list(pool.map(one, range(len(conversations))))
