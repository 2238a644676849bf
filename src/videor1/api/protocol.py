"""The OpenAI chat-completions wire format as videor1 speaks it, server and client alike.

Requests carry one conversation; a content part is text, an image (`image_url`) or a video
(`video_url`, vLLM's extension), each media URL a base64 `data:` URL or a local path. Errors have
OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.

`prompt_messages` turns our own `Prompt` into such messages. Its media are already sampled and
resized (videor1.media), so they travel losslessly: images as PNG, clips as RGB H.264 at quantiser 0
(libx264rgb) at the clip's sampled fps. A server that decodes them with the same frame count and pixel
bounds (`videor1 serve --frames N`) sees exactly the frames the client prepared, and the same fps.
"""

from __future__ import annotations

import base64
import io
from fractions import Fraction
from typing import Annotated, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from videor1.media.video import Clip
from videor1.models.inputs import Prompt

# --- errors ---------------------------------------------------------------------------------------

ERROR_TYPES = {400: "invalid_request_error", 403: "permission_error", 404: "not_found_error",
               413: "invalid_request_error", 500: "server_error"}


class APIError(Exception):
    """An error answered to the client: HTTP status plus OpenAI's error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": ERROR_TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}


# --- request --------------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a field we would not honour is refused, never ignored


class MediaURL(_Strict):
    url: str = Field(description="data:<mime>;base64,<data>, file:///absolute/path, or /absolute/path.")
    detail: Literal["auto"] | None = Field(default=None, description="Only 'auto': resolution is the server's "
                                                                     "--max-pixels / --min-pixels.")


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
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, description="Same as max_tokens (newer name).")
    temperature: float = Field(default=1.0, ge=0.0, le=2.0, description="0 means greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, description="vLLM's extension; None or -1: off.")
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    n: int = 1
    stop: str | list[str] | None = None
    stream: bool = False
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logprobs: bool = Field(default=False, description="Each completion token's log-prob (under the sampling "
                                                      "temperature; raw when greedy), as HFEngine samples them.")
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


# --- our prompts as messages ----------------------------------------------------------------------

_FPS_DENOMINATOR = 65535  # the clip's fps as a fraction: exact for the rates our sampling produces


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_data_url(image: Image.Image) -> str:
    """A PNG data URL of `image` (lossless)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return data_url("image/png", buffer.getvalue())


def encode_mp4(frames: np.ndarray, fps: float) -> bytes:
    """(T, H, W, 3) uint8 RGB frames as an mp4 at `fps`, losslessly: H.264 in RGB (libx264rgb), qp 0.

    Decoding it back (`videor1.media.video.read_video`, T frames, the same pixel bounds) returns the
    same bytes. Raises RuntimeError when this FFmpeg build has no libx264rgb.
    """
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if "libx264rgb" not in av.codecs_available:
        raise RuntimeError("this PyAV/FFmpeg build has no libx264rgb encoder: cannot send clips losslessly")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264rgb", rate=Fraction(fps).limit_denominator(_FPS_DENOMINATOR))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        stream.options = {"qp": "0", "preset": "veryfast"}
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def video_data_url(clip: Clip) -> str:
    """The clip's frames as a lossless mp4 data URL at its sampled fps (see `encode_mp4`)."""
    return data_url("video/mp4", encode_mp4(clip.frames, clip.sampled_fps))


def prompt_messages(prompt: Prompt) -> list[dict]:
    """`prompt` as chat-completions messages, in the order `Prompt.messages` gives the chat template:
    the system message if any, then one user turn with the image or video first, then the text.

    A Qwen2.5-VL server decoding the clip gets the same frames and `second_per_grid_ts`. Qwen3-VL's
    timestamps come out evenly spaced there (i / fps), where a local run uses the source frames' own
    times: close, not identical.
    """
    content: list[dict] = []
    if prompt.image is not None:
        content.append({"type": "image_url", "image_url": {"url": image_data_url(prompt.image)}})
    if prompt.video is not None:
        content.append({"type": "video_url", "video_url": {"url": video_data_url(prompt.video)}})
    content.append({"type": "text", "text": prompt.text})
    system = [] if prompt.system is None else [{"role": "system", "content": prompt.system}]
    return [*system, {"role": "user", "content": content}]
