"""videor1's GRPO step beside TRL's GRPOTrainer on one workload, and what the shared prefix saves.

    pip install -e '.[bench]'          # TRL, an optional benchmark dependency
    python bench/rl_vs_trl.py [--steps 20] [--rounds 4] [--threads 2] [--work-dir DIR] [--skip-trl]

The workload (issue 13), built once in --work-dir and read by both trainers: one tiny random-init
Qwen2.5-VL, 64 images of 112x112 (16 image tokens each) with a question of ~217 text tokens (prompts of
~233 tokens), 4 prompts x 8 responses x 64 new tokens per step, beta = 0.04, float32, --threads threads.
A random-init model rarely ends early: both trainers generate all 64 tokens almost always.

Three tables:
1. Tokens through the model per step, whole sequences vs shared prefix, at this workload and the paper's
   shapes (16 frames at 128*28*28 pixels: 1,024 video tokens; responses up to 768 tokens; G = 8).
2. The policy forward + backward and the reference forward of one step (videor1.models.logprobs, on the
   same inputs), shared prefix on vs off, alternated.
3. Seconds per step: videor1 (`videor1.train.rl.train`, GRPO, shared prefix on and off: off, each of the
   G copies of a prompt is prefilled in generation and run whole in the log-prob forwards) and TRL
   (`GRPOTrainer`), runs alternated in rotated order, each 1 warm-up step + --steps timed steps.

A step's wall clock is measured from its start to its end; before a step starts, the script waits up to
--gate-wait s for the other processes to keep fewer than --max-others cores busy; a step during which
they kept more busy on average (the machine's busy time less this process's) is disturbed and left out
of the medians; where no step of an arm was quiet, all count (the tables say how many were quiet). On a
shared machine the absolute times move with the load; compare the ratios, all measured in one sitting,
the arms alternated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from videor1.models.inputs import Prompt, encode
from videor1.models.loading import ModelOptions, load_model, load_processor, load_reference
from videor1.models.logprobs import GroupedPolicy, sequence_logprobs
from videor1.models.tiny import build_tiny_from_records
from videor1.models.vision import encode_vision
from videor1.prompts import build_question, load_template
from videor1.rollout.hf import HFEngine
from videor1.train import metrics as metrics_module
from videor1.train import rl
from videor1.train.config import load_config

IMAGES, SIDE, PROMPTS, G, NEW_TOKENS, BETA = 64, 112, 4, 8, 64, 0.04
IMAGE_PIXELS = SIDE * SIDE  # no resizing: 112 = 4 * 28, 16 merged tokens per image
FILLER = ("the scene shows several coloured shapes on a grey background some of them overlap and their "
          "sizes differ look carefully at each one before answering").split()


# --------------------------------------------------------------------------------------------------
# The workload: images, records, a tiny random-init model.
# --------------------------------------------------------------------------------------------------

def _image(rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (SIDE, SIDE), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 5)):
        x, y, r = rng.randint(10, SIDE - 10), rng.randint(10, SIDE - 10), rng.randint(5, 20)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randint(0, 255) for _ in range(3)))
    return image


def _records(rng: random.Random, words: int) -> list[dict]:
    records = []
    for i in range(IMAGES):
        question = " ".join(FILLER[j % len(FILLER)] for j in range(words)) + ". How many circles are there?"
        records.append({"problem_id": i, "problem": question, "data_type": "image",
                        "problem_type": "numerical", "options": [], "path": f"images/{i}.png",
                        "solution": f"<answer>{rng.randint(1, 5)}</answer>", "data_source": "bench"})
    return records


def prepare(work: Path, target_tokens: int, console: Console) -> tuple[Path, Path]:
    """(train file, model dir), built once per --work-dir: the question's filler words are chosen so that
    a prompt (chat template, image and question) is about `target_tokens` tokens."""
    data, model_dir = work / "data" / "train.json", work / "tiny"
    if data.exists() and (model_dir / "config.json").exists():
        return data, model_dir
    rng = random.Random(0)
    (work / "data" / "images").mkdir(parents=True, exist_ok=True)
    for i in range(IMAGES):
        _image(rng).save(work / "data" / "images" / f"{i}.png")
    words = 40
    for _ in range(6):  # the tokenizer is trained on the records: a few rounds settle the length
        data.write_text(json.dumps(_records(random.Random(1), words)), encoding="utf-8")
        shutil.rmtree(model_dir, ignore_errors=True)
        build_tiny_from_records(model_dir, [data], "qwen2_5_vl", "tiny", 0)
        length = prompt_tokens(data, model_dir)
        if abs(length - target_tokens) <= 5:
            break
        words = max(1, words + round((target_tokens - length) * words / max(length - 40, 1)))
    console.print(f"workload: {IMAGES} images {SIDE}x{SIDE}, prompts of {length} tokens")
    return data, model_dir


def prompt_texts(data: Path) -> list[tuple[str, Path]]:
    """Each record's question as videor1's trainer builds it (template video-r1), with its image path."""
    from videor1.data import load_records

    template = load_template("video-r1")
    loaded = load_records(data)
    records = getattr(loaded, "records", loaded)
    return [(build_question(r, template), data.parent / r.path) for r in records]


def prompt_tokens(data: Path, model_dir: Path) -> int:
    text, path = prompt_texts(data)[0]
    batch = encode(load_processor(model_dir), [Prompt(text, image=Image.open(path).convert("RGB"))])
    return int(batch["input_ids"].shape[1])


# --------------------------------------------------------------------------------------------------
# Disturbance: how many cores the other processes kept busy during a step.
# --------------------------------------------------------------------------------------------------

def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class _Others:
    """Cores the other processes kept busy since the last `reading()`: the machine's busy CPU seconds
    less this process's own (all its threads: a trainer's background threads are its own work), over
    the wall seconds between. A process's run-queue delay would not do: one whose threads outnumber the
    cores waits on itself."""

    def __init__(self):
        self._last = (time.perf_counter(), _busy_seconds(), time.process_time())

    def reading(self) -> tuple[float, float]:
        """(wall seconds, cores busy with other processes) since the previous reading."""
        now = (time.perf_counter(), _busy_seconds(), time.process_time())
        wall = now[0] - self._last[0]
        others = max(0.0, (now[1] - self._last[1]) - (now[2] - self._last[2])) / wall
        self._last = now
        return wall, others


class StepClock:
    """Per step: wall seconds, and the cores other processes kept busy meanwhile."""

    def __init__(self, max_others: float, gate_wait: float):
        self.max_others, self.gate_wait = max_others, gate_wait
        self.steps: list[dict] = []
        self._clock: _Others | None = None

    def gate(self) -> None:
        """Wait (up to gate_wait s) for half a second in which the other processes keep fewer than
        max_others cores busy."""
        deadline, clock = time.perf_counter() + self.gate_wait, _Others()
        while time.perf_counter() < deadline:
            time.sleep(0.5)
            if clock.reading()[1] <= self.max_others:
                return

    def start(self) -> None:
        self.gate()
        self._clock = _Others()

    def stop(self) -> None:
        if self._clock is None:
            return
        wall, others = self._clock.reading()
        self.steps.append({"wall": wall, "others": others})
        self._clock = None


# --------------------------------------------------------------------------------------------------
# The trainers.
# --------------------------------------------------------------------------------------------------

def run_videor1(data: Path, model_dir: Path, out: Path, args, shared_prefix: bool) -> list[dict]:
    """`videor1 rl` (GRPO) for 1 + steps steps; the clock around every step after the first."""
    shutil.rmtree(out, ignore_errors=True)
    overrides = {"model.path": model_dir, "model.dtype": "float32", "model.shared_prefix": shared_prefix,
                 "data.train_file": data, "media.image_min_pixels": IMAGE_PIXELS,
                 "media.image_max_pixels": IMAGE_PIXELS, "algo.name": "grpo", "algo.num_generations": G,
                 "algo.beta": BETA, "sampling.max_new_tokens": NEW_TOKENS,
                 "run.prompts_per_device": PROMPTS, "run.max_steps": args.steps + 1, "run.seed": 0,
                 "run.output_dir": out, "run.save_every": 10_000, "run.log_every": 10_000,
                 "run.tensorboard": False}
    config = load_config(None, [f"{k}={v}" for k, v in overrides.items()])
    clock = StepClock(args.max_others, args.gate_wait)
    original_log = metrics_module.MetricsWriter.log

    def timed_log(self, step, metrics):
        clock.stop()  # a step ends with its metrics line
        original_log(self, step, metrics)
        if step < args.steps + 1:
            clock.start()

    # off: the HF engine too prefills each of the G copies of a prompt (transformers' way)
    with mock.patch.object(metrics_module.MetricsWriter, "log", timed_log), \
            mock.patch.object(HFEngine, "prefill_once", shared_prefix):
        rl.train(config, progress=False)  # the first step runs untimed (warm-up)
    return clock.steps


def run_trl(data: Path, model_dir: Path, out: Path, args) -> list[dict]:
    """TRL's GRPOTrainer on the same model, images, prompt texts and sampling, for 1 + steps steps."""
    from datasets import Dataset
    from transformers import Qwen2_5_VLForConditionalGeneration, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from videor1.rewards import accuracy_reward, format_reward

    shutil.rmtree(out, ignore_errors=True)
    rows = [{"prompt": [{"role": "user", "content": text}], "image": Image.open(path).convert("RGB"),
             "solution": r["solution"]}
            for (text, path), r in zip(prompt_texts(data), json.loads(data.read_text()))]

    def accuracy(completions, solution, **kwargs):
        return [accuracy_reward(c[0]["content"], s, "numerical") for c, s in zip(completions, solution)]

    def form(completions, **kwargs):
        return [format_reward(c[0]["content"]) for c in completions]

    clock = StepClock(args.max_others, args.gate_wait)

    class Clock(TrainerCallback):
        def on_step_begin(self, train_args, state, control, **kwargs):
            if state.global_step >= 1:  # the first step is the warm-up
                clock.start()

        def on_step_end(self, train_args, state, control, **kwargs):
            clock.stop()

    config = GRPOConfig(output_dir=str(out), per_device_train_batch_size=PROMPTS * G, num_generations=G,
                        max_completion_length=NEW_TOKENS, beta=BETA, temperature=1.0, learning_rate=1e-6,
                        max_steps=args.steps + 1, logging_steps=args.steps + 1, save_strategy="no",
                        report_to="none", use_cpu=True, bf16=False, fp16=False, seed=0,
                        dataloader_num_workers=0, remove_unused_columns=False, disable_tqdm=True,
                        gradient_checkpointing=False)  # TRL's default is on; off like videor1's here
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32,
                                                               attn_implementation="sdpa")
    trainer = GRPOTrainer(model=model, reward_funcs=[accuracy, form], args=config,
                          train_dataset=Dataset.from_list(rows), processing_class=load_processor(model_dir),
                          callbacks=[Clock()])
    trainer.train()
    return clock.steps


# --------------------------------------------------------------------------------------------------
# Tables 1 and 2: tokens, and the log-prob forwards with the shared prefix on and off.
# --------------------------------------------------------------------------------------------------

def token_table(prompt: int, console: Console) -> None:
    table = Table(title="Tokens through the model per question and its G responses: whole sequences vs "
                        "shared prefix")
    for column in ("shapes", "prompt", "response", "G", "whole sequences", "shared prefix", "saved"):
        table.add_column(column, justify="left" if column == "shapes" else "right")
    paper_prompt = 1024 + prompt - 16  # 16 frames, 128*28*28 pixels each: 8 temporal patches x 128 tokens
    for name, p, t, g in [("this workload", prompt, NEW_TOKENS, G),
                          ("paper, responses of 768", paper_prompt, 768, 8),
                          ("paper, responses of 400", paper_prompt, 400, 8)]:
        whole, shared = g * (p + t), p + g * t
        table.add_row(name, str(p), str(t), str(g), f"{whole:,}", f"{shared:,}", f"{whole / shared:.2f}x")
    console.print(table)


def forward_table(data: Path, model_dir: Path, args, console: Console) -> dict:
    """Policy forward + backward and reference forward of one step's 4 x 8 sequences, on vs off."""
    processor = load_processor(model_dir)
    options = ModelOptions(path=model_dir, dtype="float32")
    model, reference = load_model(options).train(), load_reference(options)
    texts = prompt_texts(data)[:PROMPTS]
    batch = encode(processor, [Prompt(text, image=Image.open(path).convert("RGB")) for text, path in texts])
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(20, len(processor.tokenizer) - 16, (PROMPTS * G, NEW_TOKENS), generator=generator)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        vision = encode_vision(model, batch)
    times: dict[bool, list[float]] = {True: [], False: []}
    differences = []
    clock = StepClock(args.max_others, args.gate_wait)
    for rep in range(2 * args.forward_reps + 2):
        shared = rep % 2 == 0
        clock.start()
        with torch.no_grad():
            ref = sequence_logprobs(reference, batch, ids, mask, G, 1.0, vision, shared)
        logps = GroupedPolicy(model, shared)(batch, ids, mask, G, 1.0, vision)
        (logps.sum() + ref.sum()).backward()
        clock.stop()
        model.zero_grad(set_to_none=True)
        if rep >= 2:  # the first pair warms up
            times[shared].append(clock.steps[-1])
        if len(differences) < 2:  # the first on and the first off
            differences.append(logps.detach())
    quiet = {k: [s["wall"] for s in v if s["others"] <= args.max_others] or [s["wall"] for s in v]
             for k, v in times.items()}
    on, off = statistics.median(quiet[True]), statistics.median(quiet[False])
    difference = (differences[0] - differences[1]).abs().max().item()
    table = Table(title=f"Policy forward + backward and reference forward, {PROMPTS} prompts x {G} x "
                        f"{NEW_TOKENS} tokens (median of {args.forward_reps}, alternated)")
    for column in ("shared prefix", "s", "speed-up", "quiet reps"):
        table.add_column(column, justify="right")
    table.add_row("on", f"{on:.3f}", f"{off / on:.2f}x", f"{len(quiet[True])}/{len(times[True])}")
    table.add_row("off", f"{off:.3f}", "1.00x", f"{len(quiet[False])}/{len(times[False])}")
    console.print(table)
    console.print(f"max |log-prob difference| on vs off: {difference:.2e}")
    return {"on": on, "off": off}


# --------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run (default 20)")
    parser.add_argument("--rounds", type=int, default=4, help="runs of each trainer, alternated (default 4)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--prompt-tokens", type=int, default=233, help="prompt length to build (default 233)")
    parser.add_argument("--forward-reps", type=int, default=10, help="reps of table 2 per setting (10)")
    parser.add_argument("--max-others", type=float, default=0.3,
                        help="a step starts once other processes keep fewer cores busy (default 0.3), and is "
                             "disturbed where they kept more busy during it...")
    parser.add_argument("--gate-wait", type=float, default=1.0,
                        help="...or after this many seconds (default 1)")
    parser.add_argument("--skip-trl", action="store_true", help="only videor1's arms (TRL not installed)")
    parser.add_argument("--work-dir", type=Path, default=None, help="workspace, reused (default: temporary)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_trl:
        try:
            import trl  # noqa: F401
        except ImportError:
            raise SystemExit("TRL is not installed: pip install -e '.[bench]' (or --skip-trl)") from None
    console = Console() if Console().is_terminal else Console(width=130)

    with contextlib.ExitStack() as stack:
        temporary = tempfile.TemporaryDirectory(prefix="videor1-vs-trl-")
        work = args.work_dir or Path(stack.enter_context(temporary))
        work.mkdir(parents=True, exist_ok=True)
        data, model_dir = prepare(work, args.prompt_tokens, console)
        token_table(prompt_tokens(data, model_dir), console)
        forward_table(data, model_dir, args, console)

        arms = {"videor1": lambda r: run_videor1(data, model_dir, work / "runs" / f"videor1-{r}", args, True),
                "videor1, shared prefix off":
                    lambda r: run_videor1(data, model_dir, work / "runs" / f"videor1-off-{r}", args, False)}
        if not args.skip_trl:
            arms["TRL GRPOTrainer"] = lambda r: run_trl(data, model_dir, work / "runs" / f"trl-{r}", args)
        names = list(arms)
        steps: dict[str, list[list[dict]]] = {name: [] for name in names}
        load_before = os.getloadavg()[0]
        for round_ in range(args.rounds):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                steps[name].append(arms[name](round_))
                walls = " ".join(f"{s['wall']:.2f}{'*' if s['others'] > args.max_others else ''}"
                                 for s in steps[name][-1])
                console.print(f"round {round_ + 1}, {name}: {walls} s (* disturbed)")
        load_after = os.getloadavg()[0]

    summary = {}
    for name in names:
        every = [s for run in steps[name] for s in run]
        quiet = [s["wall"] for s in every if s["others"] <= args.max_others]
        summary[name] = {"median": statistics.median(quiet or [s["wall"] for s in every]),
                         "quiet": len(quiet), "all": len(every),
                         "per_round": [statistics.median(s["wall"] for s in run) for run in steps[name]]}
    reference = "TRL GRPOTrainer" if "TRL GRPOTrainer" in summary else names[0]
    base = summary[reference]["median"]
    table = Table(title=f"Seconds per GRPO step: {PROMPTS} prompts x {G} responses x {NEW_TOKENS} tokens, "
                        f"beta {BETA}, float32, {args.threads} threads ({args.rounds} alternated runs x "
                        f"{args.steps} steps)")
    for column in ("trainer", "s/step", f"speed-up vs {reference}", "per-run medians", "quiet steps"):
        table.add_column(column, justify="left" if column == "trainer" else "right")
    for name, s in summary.items():
        table.add_row(name, f"{s['median']:.3f}", f"{base / s['median']:.2f}x",
                      " ".join(f"{m:.2f}" for m in s["per_round"]), f"{s['quiet']}/{s['all']}")
    console.print(table)
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
                  f"1-min load average {load_before:.1f} before, {load_after:.1f} after. Steps during "
                  f"which other processes kept more than {args.max_others} cores busy are left out of "
                  "s/step (all count where none was quiet).")


if __name__ == "__main__":
    main()
