"""`videor1 serve`: a local checkpoint behind OpenAI's `/v1/chat/completions` and `/v1/models`.

The protocol that annotation, evaluation and inference share with vLLM. Generation is the
evaluation's: the checkpoint, processor and `HFEngine` of an `HFGenerator`, the prompt built by
`videor1.models.inputs.encode`. One generation runs at a time (a lock: a second request waits);
parsing and media decoding of the next requests go on meanwhile in worker threads.

Safety: binds 127.0.0.1 unless told otherwise, and has no authentication. Local media only from the
`--media-root` directories (symlinks resolved); nothing fetched from the network; request bodies
bounded (413 over `max_request_bytes`, checked on Content-Length and on the bytes received). Errors
come in OpenAI's shape with a 4xx status saying whose fault they are (`protocol.APIError`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from videor1.api.content import MediaPolicy, request_prompt
from videor1.api.protocol import (APIError, AssistantMessage, ChatRequest, ChatResponse, Choice, ChoiceLogprobs,
                                  ModelCard, ModelList, TokenLogprob, Usage)
from videor1.eval.generate import Dtype, HFGenerator, vision_factor
from videor1.media.loader import MediaConfig
from videor1.media.sampling import EVAL_MAX_PIXELS, EVAL_MIN_PIXELS
from videor1.models.inputs import Prompt
from videor1.rollout.base import SamplingConfig

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_MAX_REQUEST_BYTES = 256 * 2**20


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

    def __init__(self, generator: HFGenerator, name: str, policy: MediaPolicy, default_max_tokens: int):
        self.generator, self.name, self.policy = generator, name, policy
        self.default_max_tokens = default_max_tokens
        self.lock = threading.Lock()
        self.created = int(time.time())

    def complete(self, body: bytes) -> dict:
        request = parse_request(body)
        if request.model != self.name:
            raise APIError(404, f"model {request.model!r} not found; this server serves {self.name!r}",
                           param="model", code="model_not_found")
        if request.logprobs and request.stops():
            raise APIError(400, "stop and logprobs together are not supported: the log-probs would not match "
                                "the cut text", param="stop")
        prompt = request_prompt(request, self.policy)
        try:
            sampling = SamplingConfig(temperature=request.temperature, top_p=request.top_p, top_k=request.top_k,
                                      max_new_tokens=request.max_completion_tokens or request.max_tokens
                                      or self.default_max_tokens)
        except ValidationError as error:
            raise APIError(400, _describe(error)) from None
        try:
            done = self.generate(prompt, sampling, request.seed, request.logprobs)
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

    def generate(self, prompt: Prompt, sampling: SamplingConfig, seed: int | None, logprobs: bool = False
                 ) -> Completion:
        """One completion of `prompt` through the checkpoint's processor and HFEngine."""
        from videor1.models.inputs import encode
        from videor1.rollout.base import EncodedPrompts

        generator = self.generator
        with self.lock:  # one generation at a time; the processor's tokenizer is not thread-safe either
            batch = encode(generator.engine.processor, [prompt]).to(generator.engine.device)
            out = generator.engine.generate([prompt], 1, sampling, seed=seed, logprobs=logprobs,
                                            encoded=EncodedPrompts(batch))
        tokens = int(out.lengths[0])
        ids = out.ids[0, :tokens].tolist()
        values = None
        if logprobs:  # (1, T) -> the response's tokens, the end token included
            decode = generator.engine.processor.tokenizer.decode
            values = [(decode([i]), float(v)) for i, v in zip(ids, out.logprobs[0, :tokens].tolist(), strict=True)]
        return Completion(text=out.texts[0], prompt_tokens=int(batch["input_ids"].shape[1]), tokens=tokens,
                          finished=bool(ids) and ids[-1] in generator.engine.eos_ids, logprobs=values)

    def _stop(self, done: Completion, stops: list[str]) -> None:
        """Cut the text before the first stop string (generation ran on; the tokens are counted again)."""
        cuts = [i for i in (done.text.find(s) for s in stops) if i >= 0]
        if cuts:
            done.text, done.finished = done.text[:min(cuts)], True
            with self.lock:
                done.tokens = len(self.generator.engine.processor.tokenizer(done.text, add_special_tokens=False).input_ids)

    def models(self) -> dict:
        return ModelList(data=[ModelCard(id=self.name, created=self.created)]).model_dump()


def parse_request(body: bytes) -> ChatRequest:
    """The request's JSON as a ChatRequest; APIError 400 naming the first bad field otherwise."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise APIError(400, f"the request body is not valid JSON: {error}") from None
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as error:
        raise APIError(400, _describe(error), param=_location(error.errors()[0]["loc"])) from None


def _location(loc: tuple) -> str | None:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    return text or None


def _describe(error: ValidationError) -> str:
    problems = [f"{_location(e['loc']) or 'body'}: {e['msg']}" for e in error.errors()[:5]]
    more = error.error_count() - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise APIError(400, f"bad Content-Length {declared!r}")
        if int(declared) > limit:
            raise APIError(413, f"request body of {declared} bytes exceeds the server's limit of {limit} bytes "
                                "(--max-request-mb)", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body exceeds the server's limit of {limit} bytes (--max-request-mb)",
                           code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model_dir: str | Path, media_roots: list[str | Path] = (), media: MediaConfig | None = None,
               served_model_name: str | None = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
               dtype: Dtype = "auto", device: str | None = None, default_max_tokens: int = 1024) -> FastAPI:
    """The FastAPI app serving the checkpoint at `model_dir` (loaded now, so a bad one fails at start).

    `media`: decoding settings (default `server_media(model_dir)`: 32 frames, ≤ 256·28·28 pixels);
    `served_model_name`: the name clients ask for (default: the directory's name).
    """
    model_dir = Path(model_dir)
    policy = MediaPolicy.create(list(media_roots), media or server_media(model_dir))
    generator = HFGenerator(model_dir, SamplingConfig(), dtype, device)  # sampling: per request
    name = served_model_name or model_dir.resolve().name
    service = ChatService(generator, name, policy, default_max_tokens)

    app = FastAPI(title=f"videor1 serve: {name}")
    app.state.service = service

    @app.exception_handler(APIError)
    async def _api_error(_: Request, error: APIError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        return await _api_error(_, APIError(error.status_code, str(error.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return await _api_error(_, APIError(400, str(error)))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:  # still OpenAI's shape, no internals
        log.exception("request failed")
        return await _api_error(_, APIError(500, f"internal error ({type(error).__name__}); see the server log"))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict:
        return service.models()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        body = await read_body(request, max_request_bytes)
        return JSONResponse(await run_in_threadpool(service.complete, body))

    return app


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          **options) -> None:
    """Run `create_app(model_dir, **options)` with uvicorn until interrupted."""
    import uvicorn

    if host not in LOOPBACK:
        log.warning("serving on %s: anyone who can reach port %d can run the model and read the files under "
                    "the media roots (there is no authentication); bind 127.0.0.1 unless you mean it", host, port)
    app = create_app(model_dir, **options)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
