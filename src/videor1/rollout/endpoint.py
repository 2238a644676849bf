"""The `endpoint` engine: completions from an OpenAI-compatible chat server (`videor1 serve`, vLLM, ...).

Each completion is one request (`videor1.rollout.chat.ChatClient`: retries, bounded concurrency):
prompt b's n completions are n requests of its conversation. Seeds: with `seed`, row r = b * n + i of
the call is sent seed + r (mod 2**63); with `seeds`, seeds[b] + i; so every request samples its own
stream, repeatably (a server that honours `seed` answers the same).

`prompt_messages` turns our own `Prompt` into the request's messages. Its media are already sampled
and resized (videor1.media), so they travel losslessly: images as PNG, clips as RGB H.264 at quantiser
0 (libx264rgb) at the clip's sampled fps. A server that decodes them with the same frame count and
pixel bounds (`videor1 serve --frames N`) sees exactly the frames the client prepared, and the same fps.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from videor1.media.video import Clip
from videor1.models.inputs import Prompt
from videor1.rollout.base import Completions, EncodedPrompts, SamplingConfig, check_seeds
from videor1.rollout.chat import ChatClient

if TYPE_CHECKING:
    from torch import Tensor, nn

SEED_MODULUS = 2**63  # vLLM takes a signed 64-bit seed


class EndpointEngine:
    """Completions from a chat server, one request per completion."""

    def __init__(self, client: ChatClient):
        self.client = client

    def load_weights(self, model: nn.Module) -> None:
        raise NotImplementedError("an endpoint serves its own weights: it cannot take the trained policy's "
                                  "(rollout.engine=endpoint is for evaluation and annotation)")

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingConfig, *,
                 seed: int | None = None, seeds: Sequence[int] | None = None, logprobs: bool = False,
                 encoded: EncodedPrompts | None = None, stop: Callable[[], bool] | None = None,
                 settled: Callable[[Tensor, Tensor], Tensor] | None = None) -> Completions:
        """n completions per prompt (rows b * n + i); see `videor1.rollout.base.Engine.generate`.

        A chat server returns text, not token ids: `ids` are 0 and `mask` marks the server's count of
        completion tokens, so that `lengths` is right. `logprobs` are not supported; `encoded`, `stop`
        and `settled` are ignored. A request that fails for good raises its error, with the failed prompt
        named in it.
        """
        check_seeds(prompts, seed, seeds)
        if logprobs:
            raise NotImplementedError("the endpoint engine returns no token log-probs")
        with ThreadPoolExecutor(max_workers=self.client.concurrency, thread_name_prefix="encode") as pool:
            conversations = list(pool.map(prompt_messages, prompts))  # PyAV encodes without the GIL
        rows = [conversation for conversation in conversations for _ in range(n)]
        if seeds is not None:
            row_seeds = [(s + i) % SEED_MODULUS for s in seeds for i in range(n)]
        elif seed is not None:
            row_seeds = [(seed + r) % SEED_MODULUS for r in range(len(rows))]
        else:
            row_seeds = None
        replies = self.client.chat_many(rows, max_tokens=sampling.max_new_tokens,
                                        temperature=sampling.temperature, top_p=sampling.top_p,
                                        seeds=row_seeds, top_k=sampling.top_k)
        failed = [(r, reply) for r, reply in enumerate(replies) if isinstance(reply, Exception)]
        if failed:
            row, error = failed[0]
            error.add_note(f"prompt {row // n} of {len(prompts)} failed ({len(failed)} of {len(rows)} "
                           "requests failed in all)")
            raise error
        lengths = torch.tensor([reply.completion_tokens for reply in replies], dtype=torch.long)
        width = int(lengths.max()) if len(replies) else 0
        mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).long()
        finished = torch.tensor([r.finish_reason == "stop" for r in replies], dtype=torch.bool)
        texts = [reply.text for reply in replies]
        return Completions(ids=torch.zeros_like(mask), mask=mask, logprobs=None, texts=texts,
                           finished=finished)


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
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            container.mux(stream.encode(frame))
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
