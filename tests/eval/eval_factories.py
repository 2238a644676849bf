"""Made-up benchmark items in the Video-R1 evaluation format, and their scored rows."""

from __future__ import annotations

from videor1.data.records import EvalRecord
from videor1.eval import SampleResult, get_benchmark, sample_result

OPTIONS = ["A. left", "B. right", "C. up", "D. down"]
PIXELS = 84 * 84  # the synthetic clips' frame size: evaluated without resizing


def mc(pid, answer="B", **extra) -> EvalRecord:
    return EvalRecord.model_validate({
        "problem_id": pid, "problem": "Which way does it move?", "data_type": "video",
        "problem_type": "multiple choice", "options": OPTIONS, "solution": f"<answer>{answer}</answer>",
        "path": f"videos/{pid}.mp4", **extra})


def num(pid, answer, problem_type="regression", **extra) -> EvalRecord:
    return EvalRecord.model_validate({
        "problem_id": pid, "problem": "How far is it, in meters?", "data_type": "video",
        "problem_type": problem_type, "options": [], "solution": f"<answer>{answer}</answer>",
        "path": f"videos/{pid}.mp4", **extra})


def scored(bench: str, record: EvalRecord, output: str | None, condition: str = "ordered",
           error: Exception | None = None) -> SampleResult:
    return sample_result(record, str(record.problem_id), get_benchmark(bench), condition, "question",
                         output=output, error=error)


def said(answer: str) -> str:
    """A well-formed response whose final answer is `answer`."""
    return f"<think>let me think</think><answer>{answer}</answer>"


def write_video(path, frames: int = 8, size: int = 56, fps: int = 2):
    """A small mp4 whose frames are distinct grey levels, so any reordering shows."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = np.full((size, size, 3), 20 + 25 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_image(path, size: int = 56):
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), 128, np.uint8)).save(path)
    return path
