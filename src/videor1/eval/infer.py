"""One question about one video or image: the model's reasoning and its answer (`videor1 infer`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from videor1.data.records import EvalRecord
from videor1.eval.generate import Dtype, Generator, HFGenerator, eval_sampling, record_prompt, vision_factor
from videor1.eval.importers import lettered
from videor1.eval.runner import media_config
from videor1.media.sampling import EVAL_MAX_PIXELS, EVAL_MIN_PIXELS
from videor1.prompts import load_template
from videor1.rewards import extract_answer
from videor1.rollout.base import SamplingConfig

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


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
          dtype: Dtype = "auto", device: str | None = None, generator: Generator | None = None) -> InferResult:
    """Ask `question` about the video or the image (exactly one) and return the reasoning and the answer."""
    if (video is None) == (image is None):
        raise ValueError("give exactly one of video or image")
    options = lettered(options or [])
    if problem_type == "multiple choice" and len(options) < 2:
        raise ValueError("a multiple-choice question needs at least two options")
    path = Path(video if video is not None else image).expanduser().resolve()
    # Not validated: there is no ground truth; the record only carries the question to the prompt builder.
    record = EvalRecord.model_construct(problem_id="infer", problem=question, data_type="video" if video else "image",
                                        problem_type=problem_type, options=options, solution="", path=str(path),
                                        data_source="")
    prompt = record_prompt(record, load_template(template), None,
                           media_config(frames, min(min_pixels, max_pixels), max_pixels, vision_factor(model_dir)))
    if generator is None:
        generator = HFGenerator(model_dir, sampling or eval_sampling(), dtype, device)
    [generation] = generator([prompt], seed)
    reasoning, answer = split_output(generation.text)
    return InferResult(prompt.text, generation.text, reasoning, answer)
