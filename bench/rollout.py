"""Generated tokens per second of each generation engine on the same prompts, with ratios against hf.

    python bench/rollout.py [--prompts 8] [--n 4] [--max-new-tokens 64] [--rounds 3] [--threads 2]
                            [--engines hf,vllm,endpoint] [--work-dir DIR] [--device auto]
    .venv-vllm/bin/python bench/rollout.py     # with vllm (the CPU build: scripts/setup_vllm.sh)

Engines (videor1.rollout): hf (transformers `generate` in this process), vllm (colocated vLLM, when it
imports), endpoint (`videor1 serve` on the same checkpoint as a subprocess on loopback, through the
endpoint engine: one HTTP request per completion). All get the same prompts: half video questions (8
frames of 84x84 from examples/mini), half image questions, n completions each at temperature 1, one seed
per prompt. Model: a tiny random-init Qwen2.5-VL (cached in --work-dir): it rarely ends a response early,
so nearly every completion is --max-new-tokens long, the same work for every engine.

Each engine: one warm-up call, then --rounds timed calls of all the prompts; tokens/s = response tokens
(end token included) / wall seconds, median over the rounds. vLLM's start-up (loading, profiling, warm-up)
and the server's are not timed. On a GPU (--device cuda, or auto where one is) hf and the endpoint server
run there; vllm runs where its build runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import torch
from rich.console import Console
from rich.table import Table

from videor1.media import FrameSampling
from videor1.media.image import read_image
from videor1.media.video import read_video
from videor1.models.inputs import Prompt
from videor1.models.tiny import build_tiny_from_records
from videor1.rollout.base import Engine, SamplingConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "mini"
PIXELS = 7056  # 84 x 84: the trainer tests' media settings
QUESTIONS = ["What moves in the video, and where to?", "How many objects are there?", "What colour is it?",
             "Describe what happens.", "Which shape is largest?", "Where is the red object?"]


def prompts(count: int) -> list[Prompt]:
    clip = read_video(EXAMPLES / "videos" / "right_red.mp4",
                      FrameSampling(nframes=8, min_pixels=PIXELS, max_pixels=PIXELS, factor=28))
    image = read_image(EXAMPLES / "images" / "three_circles.png", PIXELS, PIXELS, 28)
    return [Prompt(QUESTIONS[i % len(QUESTIONS)], video=clip) if i % 2 == 0 else
            Prompt(QUESTIONS[i % len(QUESTIONS)], image=image) for i in range(count)]


def tokens_per_second(engine: Engine, batch: list[Prompt], n: int, sampling: SamplingConfig,
                      rounds: int) -> tuple[float, int]:
    """Median generated tokens per second over `rounds` calls (after one warm-up), and tokens per call."""
    engine.generate(batch[:1], n, sampling, seeds=[0])
    rates, tokens = [], 0
    for r in range(rounds):
        start = time.perf_counter()
        completions = engine.generate(batch, n, sampling, seeds=[1000 * r + b for b in range(len(batch))])
        elapsed = time.perf_counter() - start
        tokens = int(completions.mask.sum())
        rates.append(tokens / elapsed)
    return statistics.median(rates), tokens


def hf_engine(model_dir: Path, device: str) -> Engine:
    from videor1.rollout.hf import HFEngine

    return HFEngine.from_checkpoint(model_dir, dtype="float32", device=device)


def vllm_engine(model_dir: Path, threads: int) -> Engine:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{threads - 1}")
    from videor1.models.loading import ModelOptions, load_model, load_processor
    from videor1.rollout.vllm import VLLMEngine

    return VLLMEngine(load_model(ModelOptions(path=model_dir, dtype="float32")), load_processor(model_dir))


@contextlib.contextmanager
def served(model_dir: Path, log: Path, threads: int) -> Iterator[str]:
    """`videor1 serve` on `model_dir` on a free loopback port; yields its base URL, stops it afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "videor1.cli", "serve", "--model", str(model_dir), "--port", str(port),
               "--frames", "8", "--min-pixels", str(PIXELS), "--max-pixels", str(PIXELS)]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment)
        try:
            deadline = time.monotonic() + 180
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"videor1 serve exited: {log.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError("videor1 serve did not answer /health within 180 s")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each engine")
    parser.add_argument("--engines", default="hf,vllm,endpoint")
    parser.add_argument("--device", default="auto", help="hf and the endpoint server: cpu, cuda or auto")
    parser.add_argument("--work-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "videor1-bench-rollout")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    args.work_dir.mkdir(parents=True, exist_ok=True)
    model_dir = args.work_dir / "tiny"
    if not (model_dir / "config.json").is_file():
        build_tiny_from_records(model_dir, [EXAMPLES / "train.json"], "qwen2_5_vl", "tiny", 0)
    batch = prompts(args.prompts)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=args.max_new_tokens)
    console = Console()
    results: dict[str, tuple[float, int] | str] = {}
    for name in args.engines.split(","):
        console.print(f"[bold]{name}[/bold] ...")
        if name == "hf":
            results[name] = tokens_per_second(hf_engine(model_dir, device), batch, args.n, sampling,
                                              args.rounds)
        elif name == "vllm":
            try:
                import vllm  # noqa: F401
            except ImportError:
                results[name] = "vllm does not import here (scripts/setup_vllm.sh; .venv-vllm/bin/python)"
                continue
            results[name] = tokens_per_second(vllm_engine(model_dir, args.threads), batch, args.n, sampling,
                                              args.rounds)
        elif name == "endpoint":
            from videor1.rollout.chat import ChatClient
            from videor1.rollout.endpoint import EndpointEngine

            with served(model_dir, args.work_dir / "serve.log", args.threads) as url:
                engine = EndpointEngine(ChatClient(url, concurrency=4))
                results[name] = tokens_per_second(engine, batch, args.n, sampling, args.rounds)
        else:
            raise SystemExit(f"unknown engine {name!r}: use hf, vllm, endpoint")

    table = Table(title=f"{args.prompts} prompts (video and image) x {args.n} completions, up to "
                        f"{args.max_new_tokens} new tokens, tiny Qwen2.5-VL, {device}, {args.threads} "
                        f"threads; median of {args.rounds}")
    for column in ("engine", "tokens / call", "tokens / s", "vs hf"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    base = results.get("hf")
    for name, result in results.items():
        if isinstance(result, str):
            table.add_row(name, "-", "-", result)
            continue
        rate, tokens = result
        ratio = f"{rate / base[0]:.2f}x" if isinstance(base, tuple) else "-"
        table.add_row(name, str(tokens), f"{rate:.1f}", ratio)
    console.print(table)


if __name__ == "__main__":
    main()
