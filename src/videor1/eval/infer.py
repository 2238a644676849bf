"""One question about one video or image: the model's reasoning and its answer (`videor1 infer`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from videor1.data.records import EvalRecord
from videor1.eval.generate import Dtype, Generator, HFGenerator, eval_sampling, record_prompt, vision_factor
from videor1.eval.importers import lettered
from videor1.eval.runner import media_config
from videor1.media.sampling import EVAL_MAX_PIXELS, EVAL_MIN_PIXELS
from videor1.prompts import load_template
from videor1.rewards import PROBLEM_TYPES, extract_answer, get_problem_type
from videor1.rollout.base import SamplingConfig

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


class InferConfig(BaseModel):
    """`videor1 infer`: one question, one video or image, one model (local or behind an endpoint)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="The question, without options.")
    model: Path | None = Field(default=None, description="Local checkpoint directory; or give endpoint.")
    endpoint: str | None = Field(default=None, description="Instead of model: an OpenAI-compatible server's "
                                 "base URL (videor1 serve, vLLM; key: $VIDEOR1_API_KEY or $OPENAI_API_KEY).")
    endpoint_model: str | None = Field(default=None, description="Model name on the endpoint (default: the "
                                       "first it lists).")
    video: Path | None = Field(default=None, description="A video file (or give image).")
    image: Path | None = Field(default=None, description="An image file (or give video).")
    problem_type: str | None = Field(default=None, description="multiple choice, numerical, OCR, free-form "
                                     "or regression (default: multiple choice with options, else free-form).")
    options: list[str] = Field(default_factory=list, description="The options, one per entry: 'A. red' or "
                               "'red' (lettered in order).")
    template: str = Field(default="video-r1",
                          description="Prompt preset (video-r1, video-r1-eval, plain) or a "
                          "template file.")
    frames: int = Field(default=32, ge=2, description="Frames sampled from the video.")
    max_pixels: int = Field(default=EVAL_MAX_PIXELS, ge=1, description="Max pixels per frame or image.")
    min_pixels: int = Field(default=EVAL_MIN_PIXELS, ge=1, description="Min pixels per frame (lowered to "
                            "max_pixels when above it).")
    sampling: SamplingConfig = Field(default_factory=eval_sampling, description="Decoding; default: the "
                                     "paper's temperature 0.01, top_p 0.001, up to 1024 new tokens.")
    seed: int = Field(default=0, description="Seeds the sampling.")
    dtype: Dtype = Field(default="auto", description="auto (bfloat16 on GPU, float32 on CPU), float32, "
                         "bfloat16, float16.")
    device: str | None = Field(default=None, description="cuda, cpu, … (default: cuda when available).")

    @model_validator(mode="after")
    def _check(self) -> InferConfig:
        if (self.video is None) == (self.image is None):
            raise ValueError("give exactly one of video or image")
        self.problem_type = self.problem_type or ("multiple choice" if self.options else "free-form")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {', '.join(PROBLEM_TYPES)}, got "
                             f"{self.problem_type!r}")
        return self


@dataclass
class InferResult:
    prompt: str
    output: str
    reasoning: str | None  # the last <think> block, if any
    answer: str | None  # the last <answer> block, if any


def split_output(output: str) -> tuple[str | None, str | None]:
    """(reasoning, answer) of a response: the last `<think>` and `<answer>` contents, else None."""
    thoughts = _THINK.findall(output)
    return (thoughts[-1].strip() if thoughts else None), extract_answer(output)


def infer(model_dir: str | Path | None, question: str, video: str | Path | None = None,
          image: str | Path | None = None, problem_type: str = "free-form", options: list[str] | None = None,
          template: str = "video-r1", frames: int = 32, max_pixels: int = EVAL_MAX_PIXELS,
          min_pixels: int = EVAL_MIN_PIXELS, sampling: SamplingConfig | None = None, seed: int = 0,
          dtype: Dtype = "auto", device: str | None = None,
          generator: Generator | None = None) -> InferResult:
    """Ask `question` about the video or the image (exactly one) and return the reasoning and the answer."""
    if (video is None) == (image is None):
        raise ValueError("give exactly one of video or image")
    options = lettered(options or [])
    if get_problem_type(problem_type).options and len(options) < 2:
        raise ValueError(f"a {problem_type} question needs at least two options")
    path = Path(video if video is not None else image).expanduser().resolve()
    # Not validated: there is no ground truth; the record only carries the question to the prompt builder.
    record = EvalRecord.model_construct(problem_id="infer", problem=question,
                                        data_type="video" if video else "image", problem_type=problem_type,
                                        options=options, solution="", path=str(path), data_source="")
    prompt = record_prompt(record, load_template(template), None,
                           media_config(frames, min(min_pixels, max_pixels), max_pixels,
                                        vision_factor(model_dir)))
    if generator is None:
        generator = HFGenerator(model_dir, sampling or eval_sampling(), dtype, device)
    [generation] = generator([prompt], seed)
    reasoning, answer = split_output(generation.text)
    return InferResult(prompt.text, generation.text, reasoning, answer)
