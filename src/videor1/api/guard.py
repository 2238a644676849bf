"""What one request to `videor1 serve` may take, and who may send it (the server's checks, each on
its own; the README's "What the server protects against" lists them).

A request's budget: its prompt, vision tokens included, must fit the model's context (`context_length`)
with room for its `max_tokens`; a text too long whatever its tokens is refused before tokenizing
(`longest_token_chars`); once it holds the model, its generation stops when its time is up, its
client has gone, or the server is stopping (`Budget`, polled by the engine after every step).
Who: only `application/json` bodies (`check_json`), with the API key when one is set (`check_api_key`),
and a warning when bound beyond loopback (`exposure_warning`).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import SecretStr

from videor1.api.protocol import APIError, ChatRequest, TextPart

API_KEY_VARIABLE = "VIDEOR1_API_KEY"  # the variable the client reads too: one export serves both sides
DISCONNECT_POLL_S = 0.1  # how often a waiting or running request looks for its client's disconnect


def context_length(model_dir: str | Path, max_model_len: int | None = None) -> int:
    """Tokens a prompt and its completion may take together: the checkpoint's text
    `max_position_embeddings` (the positions its language model was built for: 128000 for Qwen2.5-VL,
    262144 for Qwen3-VL; the tokenizer's `model_max_length` is a tokenizer default, not the model's
    limit), or `max_model_len` when given, which may only lower it (memory on a small GPU)."""
    from transformers import AutoConfig

    limit = getattr(AutoConfig.from_pretrained(model_dir).get_text_config(), "max_position_embeddings", None)
    if not isinstance(limit, int):
        raise ValueError(f"{model_dir}: its config gives no max_position_embeddings; pass --max-model-len")
    if max_model_len is not None and max_model_len > limit:
        raise ValueError(f"--max-model-len {max_model_len} exceeds the context of {model_dir} "
                         f"({limit} tokens)")
    return max_model_len or limit


def longest_token_chars(tokenizer) -> int:
    """Characters of the longest vocabulary entry. A byte-level BPE entry (Qwen's) is written one
    character per byte, so no token stands for more text characters than this."""
    return max(map(len, tokenizer.get_vocab()))


def request_text(request: ChatRequest) -> str:
    """All text of the request's messages, as the tokenizer will see it (NFC, Qwen's normaliser)."""
    texts = [m.content if isinstance(m.content, str) else "".join(p.text for p in m.content
                                                                  if isinstance(p, TextPart))
             for m in request.messages]
    return unicodedata.normalize("NFC", "".join(texts))


@dataclass
class Budget:
    """When a request's generation must stop: its client left, the server is stopping, or its time
    (`deadline`, time.monotonic()) is up. Polled by the engine after every decoding step."""

    cancelled: threading.Event
    shutdown: threading.Event
    deadline: float = math.inf

    def __call__(self) -> bool:
        return self.cancelled.is_set() or self.shutdown.is_set() or time.monotonic() > self.deadline

    def error(self, timeout: float) -> APIError | None:
        """Why the request must stop, as its answer; None while it may go on."""
        if self.shutdown.is_set():
            return APIError(503, "the server is shutting down; send the request again once it is back",
                            code="server_shutting_down")
        if self.cancelled.is_set():  # nobody reads it: for the access log
            return APIError(499, "the client closed the connection", code="client_disconnected")
        if time.monotonic() > self.deadline:
            return APIError(422, f"the request ran past the server's limit of {timeout:g} s per request "
                                 "(--request-timeout): ask for fewer max_tokens or a shorter prompt",
                            code="request_timeout")
        return None


def check_api_key(request: Request, api_key: SecretStr | None) -> None:
    """401 unless the request carries `Authorization: Bearer <api_key>` (compared in constant time)."""
    if api_key is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             api_key.get_secret_value().encode()):
        raise APIError(401, "missing or wrong API key: send 'Authorization: Bearer <key>' with the server's "
                            f"--api-key (${API_KEY_VARIABLE})", code="invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})


def check_json(request: Request) -> None:
    """415 unless the body is declared `application/json`: a browser posts text/plain or a form to any
    site without asking first (no CORS preflight), JSON only after asking, and this server says no."""
    declared = request.headers.get("content-type", "")
    if declared.partition(";")[0].strip().lower() != "application/json":
        raise APIError(415, f"Content-Type must be application/json, got {declared or 'none'!r}",
                       code="unsupported_media_type")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise APIError(400, f"bad Content-Length {declared!r}")
        if int(declared) > limit:
            raise APIError(413, f"request body of {declared} bytes exceeds the server's limit of {limit} "
                                "bytes (--max-request-mb)", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body exceeds the server's limit of {limit} bytes "
                                "(--max-request-mb)", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def while_connected(request: Request, work: Callable[[threading.Event], dict]) -> dict:
    """`work(cancelled)` in a worker thread; `cancelled` is set as soon as the client disconnects (polled),
    or when this coroutine itself is cancelled, so the generation stops with it."""
    cancelled = threading.Event()
    task = asyncio.ensure_future(run_in_threadpool(work, cancelled))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if not task.done() and await request.is_disconnected():
                cancelled.set()
        return task.result()
    finally:
        cancelled.set()


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only: localhost, 127.0.0.0/8, ::1."""
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def exposure_warning(host: str, port: int, api_key: bool) -> str | None:
    """What binding `host` exposes, when it is not loopback; None on loopback."""
    if is_loopback(host):
        return None
    if api_key:
        return (f"serving on {host}: anyone who can reach port {port} and has the API key can run the model "
                "and read the files under the media roots; the key travels in clear text (no TLS)")
    return (f"serving on {host}: anyone who can reach port {port} can run the model and read the files "
            f"under the media roots (no authentication: set --api-key or ${API_KEY_VARIABLE}); bind "
            "127.0.0.1 unless you mean it")
