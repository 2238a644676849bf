"""Records plus decoded media into model inputs, through the checkpoint's own processor.

The one place that builds the chat, so that generation, log-prob passes, SFT and evaluation see the
same tokens. Frames arrive already sampled and resized (videor1.media), so the processor is told
not to resample or resize them, and receives each video's real timing: without it transformers
assumes 24 fps, and Qwen2.5-VL's `second_per_grid_ts` (Qwen3-VL's timestamps) come out wrong, which
can give every temporal patch the same M-RoPE position (docs/demo.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from videor1.data.records import Record
from videor1.media.video import Clip


@dataclass
class Prompt:
    """One user turn: the question text and at most one image or video; optionally a system message
    (None: the chat template's default one, e.g. Qwen's "You are a helpful assistant.")."""

    text: str
    image: Image.Image | None = None
    video: Clip | None = None
    system: str | None = None

    def messages(self) -> list[dict]:
        content: list[dict] = []
        if self.image is not None:
            content.append({"type": "image"})
        if self.video is not None:
            content.append({"type": "video"})
        content.append({"type": "text", "text": self.text})
        system = [] if self.system is None else [{"role": "system", "content": self.system}]
        return [*system, {"role": "user", "content": content}]


@dataclass
class Question:
    """A record with its prompt (question text and decoded media), ready for the model: what RL and
    SFT train on and score."""

    record: Record
    prompt: Prompt


def video_metadata(clip: Clip):
    """transformers' VideoMetadata of a sampled clip, with the real fps and source frame indices.

    transformers derives the sampled fps as len(indices) / total_num_frames * fps; `total_num_frames`
    is the number of frames in the sampled range, so that it equals `clip.sampled_fps` (also when
    only part of the video was sampled).
    """
    from transformers.video_utils import VideoMetadata

    info = clip.info
    frames_in_range = round(len(clip.indices) * info.fps / clip.sampled_fps)
    return VideoMetadata(total_num_frames=frames_in_range, fps=info.fps, frames_indices=list(clip.indices),
                         width=info.width, height=info.height, duration=info.duration)


def chat_text(processor, prompt: Prompt, target: str | None = None) -> str:
    """The chat-formatted text of one prompt (generation prompt added), plus the target when given."""
    text = processor.apply_chat_template(prompt.messages(), add_generation_prompt=True, tokenize=False)
    return text if target is None else text + target + processor.tokenizer.eos_token


def encode(processor, prompts: list[Prompt], targets: list[str] | None = None, padding_side: str = "left"):
    """A padded batch for `prompts` (and their assistant targets, for SFT and log-prob passes).

    Returns the processor's BatchFeature: input_ids, attention_mask, mm_token_type_ids (B, L) and,
    when present, pixel_values / image_grid_thw, pixel_values_videos / video_grid_thw and
    second_per_grid_ts (Qwen2.5-VL). Images and videos may be mixed in one batch.
    """
    texts = [chat_text(processor, p, targets[i] if targets else None) for i, p in enumerate(prompts)]
    images = [p.image for p in prompts if p.image is not None]
    clips = [p.video for p in prompts if p.video is not None]
    kwargs = {}
    if images:
        kwargs.update(images=images)
    if clips:
        kwargs.update(videos=[clip.frames for clip in clips],
                      video_metadata=[video_metadata(c) for c in clips], do_sample_frames=False)
    return processor(text=texts, padding=True, padding_side=padding_side, do_resize=False,
                     return_tensors="pt", **kwargs)
