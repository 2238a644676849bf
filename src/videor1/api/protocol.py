"""The OpenAI chat-completions wire format as videor1's server speaks it.

Requests carry one conversation; a content part is text, an image (`image_url`) or a video
(`video_url`, vLLM's extension), each media URL a base64 `data:` URL or a local path. Errors have
OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`. The client side, our `Prompt` as
such messages, is `videor1.rollout.endpoint.prompt_messages`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# --- errors ---------------------------------------------------------------------------------------

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
               404: "not_found_error", 413: "invalid_request_error", 415: "invalid_request_error",
               422: "invalid_request_error", 500: "server_error", 503: "server_error"}
MAX_TOKENS_BOUND = 2**31 - 1  # any larger max_tokens is refused as malformed; the context bounds it further


class APIError(Exception):
    """An error answered to the client: HTTP status plus OpenAI's error body (and headers, e.g. 401's)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": ERROR_TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}


# --- request --------------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a field we would not honour is refused, never ignored


class MediaURL(_Strict):
    url: str = Field(description="data:<mime>;base64,<data>, file:///absolute/path, or /absolute/path.")
    detail: Literal["auto"] | None = Field(default=None, description="Only 'auto': resolution is the "
                                           "server's --max-pixels / --min-pixels.")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: MediaURL


class VideoPart(_Strict):
    type: Literal["video_url"]
    video_url: MediaURL


ContentPart = Annotated[TextPart | ImagePart | VideoPart, Field(discriminator="type")]


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]
    name: str | None = None  # accepted and unused: it changes nothing in the prompt


class ChatRequest(_Strict):
    """POST /v1/chat/completions. Fields with no effect here are refused when set to anything but
    their neutral value (n=1, stream=false, no penalties, no logprobs)."""

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_BOUND, description="At most the "
                                   "context left after the prompt (the server answers 400 beyond it, saying "
                                   "the limit).")
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_BOUND,
                                              description="Same as max_tokens (newer name).")
    temperature: float = Field(default=1.0, ge=0.0, le=2.0, description="0 means greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, description="vLLM's extension; None or -1: off.")
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    n: int = 1
    stop: str | list[str] | None = None
    stream: bool = False
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logprobs: bool = Field(default=False, description="Each completion token's log-prob (under the "
                           "sampling temperature; raw when greedy), as HFEngine samples them.")
    top_logprobs: int | None = None
    user: str | None = None

    @field_validator("n")
    @classmethod
    def _one(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"n={value}: this server returns one choice per request (n=1); send n requests")
        return value

    @field_validator("stream")
    @classmethod
    def _off(cls, value: bool) -> bool:
        if value:
            raise ValueError("streaming is not supported by this server: leave it false")
        return value

    @field_validator("top_logprobs")
    @classmethod
    def _no_alternatives(cls, value: int | None) -> int | None:
        if value:
            raise ValueError("this server returns the sampled tokens' log-probs only: top_logprobs must be 0")
        return value

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _zero(cls, value: float) -> float:
        if value != 0:
            raise ValueError("penalties are not supported by this server: leave it 0")
        return value

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, value: int | None) -> int | None:
        if value is not None and value != -1 and value < 1:
            raise ValueError("top_k must be >= 1, or -1 / null for no top-k")
        return None if value == -1 else value

    def stops(self) -> list[str]:
        return [s for s in ([self.stop] if isinstance(self.stop, str) else self.stop or []) if s]


# --- response -------------------------------------------------------------------------------------

class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[dict] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob]


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: ChoiceLogprobs | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "videor1"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
