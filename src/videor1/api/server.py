"""`videor1 serve`: a local checkpoint behind OpenAI's `/v1/chat/completions` and `/v1/models`.

The protocol that annotation, evaluation and inference share with vLLM. Generation is the
evaluation's: the checkpoint's `HFEngine`, the prompt built by `videor1.models.inputs.encode`. One
generation runs at a time (a lock: a second request waits); parsing and media decoding of the next
requests go on meanwhile in worker threads.

What one request can take (README, "What the server protects against"): its body is bounded
(`max_request_mb`, 413); its prompt, vision tokens included, must fit the model's context with room
for one token, and `max_tokens` must fit what is left (400, saying the limit); holding the model, it
runs at most `request_timeout` seconds (422), and it stops as soon as its client disconnects or the
server is told to stop (SIGTERM, Ctrl-C: 503). So the next request waits at most for the bounded
budget of those before it. Only `application/json` bodies are read (415: a cross-site form post is
refused), optionally only with the API key (401). Local media only from the `--media-root`
directories (symlinks resolved); nothing fetched from the network. Errors come in OpenAI's shape with
a 4xx status saying whose fault they are (`protocol.APIError`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from starlette.exceptions import HTTPException

from videor1.api.content import MediaPolicy, request_prompt
from videor1.api.guard import (
    DISCONNECT_POLL_S,
    Budget,
    check_api_key,
    check_json,
    context_length,
    exposure_warning,
    longest_token_chars,
    read_body,
    request_text,
    while_connected,
)
from videor1.api.protocol import (
    APIError,
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    Choice,
    ChoiceLogprobs,
    ModelCard,
    ModelList,
    TokenLogprob,
    Usage,
)
from videor1.eval.generate import vision_factor
from videor1.media.loader import MediaConfig
from videor1.media.sampling import EVAL_MAX_PIXELS, EVAL_MIN_PIXELS
from videor1.models.inputs import Prompt
from videor1.rollout.base import EncodedPrompts, SamplingConfig
from videor1.rollout.hf import Dtype, HFEngine

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10  # after SIGTERM, the longest uvicorn waits for responses still being sent


class ServeConfig(BaseModel):
    """`videor1 serve`: what is served, to whom, and the bounds on each request."""

    model_config = ConfigDict(extra="forbid")

    model: Path = Field(description="Local checkpoint directory to serve.")
    host: str = Field(default="127.0.0.1", description="Interface to bind; anything but loopback exposes the "
                      "model and the media roots to the network.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0: any free one).")
    media_roots: list[Path] = Field(default_factory=list, description="Directories whose files requests may "
                                    "name by path (none: only data: URLs).")
    frames: int = Field(default=32, ge=2, description="Frames sampled from each video.")
    max_pixels: int = Field(default=EVAL_MAX_PIXELS, ge=1, description="Max pixels per frame or image.")
    min_pixels: int = Field(default=EVAL_MIN_PIXELS, ge=1, description="Min pixels per frame.")
    served_model_name: str | None = Field(default=None, description="Model name in /v1/models and requests "
                                          "(default: the directory's name).")
    max_request_mb: float = Field(default=256.0, gt=0, description="Largest request body, in MiB "
                                  "(413 above).")
    dtype: Dtype = Field(default="auto", description="auto (bfloat16 on GPU, float32 on CPU), float32, "
                         "bfloat16, float16.")
    device: str | None = Field(default=None, description="cuda, cpu, … (default: cuda when available).")
    default_max_tokens: int = Field(default=1024, ge=1, description="Completion tokens when a request names "
                                    "no max_tokens (at most what the context leaves).")
    max_model_len: int | None = Field(default=None, ge=2, description="Prompt plus completion tokens per "
                                      "request (default and upper bound: the checkpoint's "
                                      "max_position_embeddings).")
    request_timeout: float = Field(default=300.0, gt=0, description="Seconds one request may hold the model "
                                   "(processing and generation); beyond, it stops and gets a 422.")
    api_key: SecretStr | None = Field(default=None, description="When set, /v1/* requests need "
                                      "'Authorization: Bearer <key>' (401 otherwise).")
    log_level: str = Field(default="info", description="uvicorn's log level.")

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 2**20)

    def media(self) -> MediaConfig:
        return server_media(self.model, self.frames, self.max_pixels, self.min_pixels)


def server_media(model_dir: str | Path, frames: int = 32, max_pixels: int = EVAL_MAX_PIXELS,
                 min_pixels: int = EVAL_MIN_PIXELS) -> MediaConfig:
    """The server's decoding: `frames` per video, the evaluation's pixel bounds, the checkpoint's factor."""
    from videor1.eval.runner import media_config

    return media_config(frames, min(min_pixels, max_pixels), max_pixels, vision_factor(model_dir))


@dataclass
class Completion:
    """One generated answer: completion tokens count the end token; `finished`: the model ended it."""

    text: str
    prompt_tokens: int
    tokens: int
    finished: bool
    logprobs: list[tuple[str, float]] | None  # (token text, log-prob) per completion token


class ChatService:
    """Requests in, completions out: validation, media, and generation under the lock."""

    def __init__(self, engine: HFEngine, name: str, policy: MediaPolicy, config: ServeConfig, context: int):
        self.engine, self.name, self.policy, self.context = engine, name, policy, context
        self.default_max_tokens, self.timeout = config.default_max_tokens, config.request_timeout
        self.longest_token = longest_token_chars(engine.processor.tokenizer)
        self.lock = threading.Lock()
        self.shutdown = threading.Event()  # set on SIGTERM / Ctrl-C and on the app's shutdown
        self.created = int(time.time())

    def complete(self, body: bytes, cancelled: threading.Event) -> dict:
        """The response to one request body; `cancelled`: set when its client goes away."""
        request = parse_request(body)
        if request.model != self.name:
            raise APIError(404, f"model {request.model!r} not found; this server serves {self.name!r}",
                           param="model", code="model_not_found")
        if request.logprobs and request.stops():
            raise APIError(400, "stop and logprobs together are not supported: the log-probs would not match "
                                "the cut text", param="stop")
        # before decoding media or tokenizing: text too long for the context whatever its tokens
        at_least = math.ceil(len(request_text(request)) / self.longest_token)
        if at_least >= self.context:
            raise APIError(400, f"the prompt's text takes at least {at_least} tokens; this model's context "
                                f"is {self.context} tokens (prompt and completion together)",
                           param="messages", code="context_length_exceeded")
        prompt = request_prompt(request, self.policy)
        try:
            done = self.generate(prompt, request, Budget(cancelled, self.shutdown))
        except APIError:
            raise
        except Exception as error:  # noqa: BLE001 - the client learns that the server failed, the log why
            log.exception("generation failed")  # the why (paths included) stays in the server's log
            raise APIError(500, f"generation failed ({type(error).__name__}); see the server log") from None
        self._stop(done, request.stops())
        logprobs = None if done.logprobs is None else ChoiceLogprobs(content=[
            TokenLogprob(token=token, logprob=value, bytes=list(token.encode("utf-8")))
            for token, value in done.logprobs])
        return ChatResponse(
            id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=self.name,
            choices=[Choice(index=0, message=AssistantMessage(content=done.text),
                            finish_reason="stop" if done.finished else "length", logprobs=logprobs)],
            usage=Usage(prompt_tokens=done.prompt_tokens, completion_tokens=done.tokens,
                        total_tokens=done.prompt_tokens + done.tokens),
        ).model_dump()

    def generate(self, prompt: Prompt, request: ChatRequest, budget: Budget) -> Completion:
        """One completion of `prompt` through the checkpoint's processor and HFEngine, within `budget`:
        the prompt's tokens (vision tokens included) are counted against the context before generating."""
        from videor1.models.inputs import encode

        engine = self.engine
        with self._holding_model(budget):  # one generation at a time; the tokenizer is not thread-safe either
            budget.deadline = time.monotonic() + self.timeout
            batch = encode(engine.processor, [prompt]).to(engine.device)
            prompt_tokens = int(batch["input_ids"].shape[1])
            sampling = self._sampling(request, prompt_tokens)
            if (error := budget.error(self.timeout)) is not None:
                raise error
            out = engine.generate([prompt], 1, sampling, seed=request.seed, logprobs=request.logprobs,
                                  encoded=EncodedPrompts(batch), stop=budget)
            tokens, finished = int(out.lengths[0]), bool(out.finished[0])
            ids = out.ids[0, :tokens].tolist()
            values = None
            if request.logprobs:  # (1, T) -> the response's tokens, the end token included
                decode = engine.processor.tokenizer.decode
                values = [(decode([i]), float(v)) for i, v in zip(ids, out.logprobs[0, :tokens].tolist(),
                                                                  strict=True)]
        if not finished and tokens < sampling.max_new_tokens and (error := budget.error(self.timeout)):
            log.info("request stopped after %d of %d tokens: %s", tokens, sampling.max_new_tokens,
                     error.message)
            raise error
        return Completion(text=out.texts[0], prompt_tokens=prompt_tokens, tokens=tokens, finished=finished,
                          logprobs=values)

    @contextlib.contextmanager
    def _holding_model(self, budget: Budget):
        """The generation lock, waited for only as long as the client waits and the server runs."""
        while not self.lock.acquire(timeout=DISCONNECT_POLL_S):
            if (error := budget.error(self.timeout)) is not None:
                raise error
        try:
            yield
        finally:
            self.lock.release()

    def _sampling(self, request: ChatRequest, prompt_tokens: int) -> SamplingConfig:
        """The request's sampling, its completion bounded by the context left after the prompt (else 400)."""
        left = self.context - prompt_tokens
        if left < 1:
            raise APIError(400, f"the prompt takes {prompt_tokens} tokens (its image or video included); "
                                f"this model's context is {self.context} tokens, prompt and completion "
                                "together: shorten it, or send fewer frames or pixels", param="messages",
                           code="context_length_exceeded")
        param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        asked = getattr(request, param)
        if asked is not None and asked > left:
            raise APIError(400, f"{param}={asked} exceeds the {left} tokens left of this model's context of "
                                f"{self.context} tokens after the prompt's {prompt_tokens}: ask for at most "
                                f"{left}", param=param, code="context_length_exceeded")
        try:
            return SamplingConfig(temperature=request.temperature, top_p=request.top_p, top_k=request.top_k,
                                  max_new_tokens=asked or min(self.default_max_tokens, left))
        except ValidationError as error:
            raise APIError(400, _describe(error)) from None

    def _stop(self, done: Completion, stops: list[str]) -> None:
        """Cut the text before the first stop string (generation ran on; the tokens are counted again)."""
        cuts = [i for i in (done.text.find(s) for s in stops) if i >= 0]
        if cuts:
            done.text, done.finished = done.text[:min(cuts)], True
            with self.lock:
                tokenizer = self.engine.processor.tokenizer
                done.tokens = len(tokenizer(done.text, add_special_tokens=False).input_ids)

    def models(self) -> dict:
        return ModelList(data=[ModelCard(id=self.name, created=self.created)]).model_dump()


def parse_request(body: bytes) -> ChatRequest:
    """The request's JSON as a ChatRequest; APIError 400 naming the first bad field otherwise."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise APIError(400, f"the request body is not valid JSON: {error}") from None
    except RecursionError:
        raise APIError(400, "the request body is nested too deeply") from None
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as error:
        raise APIError(400, _describe(error), param=_location(error.errors()[0]["loc"])) from None
    except RecursionError:
        raise APIError(400, "the request body is nested too deeply") from None


def _location(loc: tuple) -> str | None:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    return text or None


def _describe(error: ValidationError) -> str:
    problems = [f"{_location(e['loc']) or 'body'}: {e['msg']}" for e in error.errors()[:5]]
    more = error.error_count() - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def create_app(config: ServeConfig) -> FastAPI:
    """The FastAPI app serving `config.model` (loaded now, so a bad checkpoint fails at start)."""
    policy = MediaPolicy.create(list(config.media_roots), config.media())
    context = context_length(config.model, config.max_model_len)  # before loading: a bad one fails at once
    engine = HFEngine.from_checkpoint(config.model, config.dtype, config.device)
    name = config.served_model_name or config.model.resolve().name
    service = ChatService(engine, name, policy, config, context)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        service.shutdown.set()

    app = FastAPI(title=f"videor1 serve: {name}", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(APIError)
    async def _api_error(_: Request, error: APIError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        return await _api_error(_, APIError(error.status_code, str(error.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return await _api_error(_, APIError(400, str(error)))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:  # still OpenAI's shape, no internals
        log.exception("request failed")
        return await _api_error(_, APIError(500, f"internal error ({type(error).__name__}); see the server "
                                                 "log"))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        check_api_key(request, config.api_key)
        return service.models()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        check_api_key(request, config.api_key)
        check_json(request)
        body = await read_body(request, config.max_request_bytes)
        answer = await while_connected(request, lambda cancelled: service.complete(body, cancelled))
        return JSONResponse(answer)

    return app


def serve(config: ServeConfig) -> None:
    """Run `create_app(config)` with uvicorn until SIGTERM or Ctrl-C, which also stop a running generation."""
    import uvicorn

    if (warning := exposure_warning(config.host, config.port, config.api_key is not None)) is not None:
        log.warning(warning)
    app = create_app(config)
    shutdown = app.state.service.shutdown

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:  # uvicorn waits for running requests: stop them first
            shutdown.set()
            super().handle_exit(sig, frame)

    Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=config.log_level,
                          timeout_graceful_shutdown=SHUTDOWN_GRACE_S)).run()
