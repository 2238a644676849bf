"""Seconds per RL step: GRPO, T-GRPO the reference way, and T-GRPO our way, on one model, data and seed.

    python bench/rl_step.py [--steps 8] [--prompts 4] [--generations 4] [--max-new-tokens 64] [--work-dir DIR]
                            [--rounds 3] [--threads 1] [--supervise-steps 80] [--seed 0]

Setup (cached in --work-dir): 64 synthetic questions, a tiny Qwen2.5-VL, briefly supervised on the
synthetic chains of thought so that its answers have the format and are sometimes right (rewards vary).
Then runs of `videor1.train.rl.train`, each 1 warm-up step + --steps timed steps, for each of three arms,
repeated --rounds times in rotated order (other processes on a shared machine then slow every arm alike):

1. GRPO                   algo.name=grpo
2. T-GRPO, reference way  media.shuffle=frame, algo.skip_shuffled=false, generation prefills each of
                          a prompt's G copies (transformers' num_return_sequences), and vision per
                          sequence: the policy and reference log-prob forwards run whole sequences with
                          the pixels repeated G times, so every sequence re-encodes its video and its
                          prompt (`sequence_logprobs_per_sequence` below)
3. T-GRPO, our way        the defaults: media.shuffle=temporal_patch, algo.skip_shuffled=true, each
                          prompt's vision embeddings and prompt computed once for its G sequences

A step's time is the wall clock between two consecutive metrics.jsonl lines (the trainer writes one
per step): everything a step does, including the question preparation and the reference log-prob
forward, which `time/rollout` + `time/update` leave out. The mean over all timed steps is shown (the
cost per step of a run: a T-GRPO step costs more when it generates shuffled groups, about half of them
here, so its step times have two modes and their median follows whichever holds the middle step),
with the median and the process's CPU time per step beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from rich.console import Console
from rich.table import Table

from videor1.data import load_records
from videor1.data.synth import synthesize
from videor1.media.loader import SkipLog
from videor1.models import logprobs
from videor1.models.inputs import encode
from videor1.models.loading import load_model, load_processor
from videor1.models.tiny import build_tiny_from_records
from videor1.models.vision import encode_vision
from videor1.rollout.base import EncodedPrompts
from videor1.rollout.hf import HFEngine
from videor1.train import metrics as metrics_module
from videor1.train import rl, sft
from videor1.train.config import load_config
from videor1.train.data import QuestionSource

# 8 frames of 84x84 (3x3 merged tokens per temporal patch): the trainer tests' media settings.
MEDIA = dict(nframes=8, video_min_pixels=7056, video_max_pixels=7056, image_min_pixels=3136,
             image_max_pixels=7056)


# --------------------------------------------------------------------------------------------------
# Setup: data, a tiny model, a brief supervised warm-up (a copy of tests/train/conftest.py `_supervise`).
# --------------------------------------------------------------------------------------------------

def supervise(model_dir: Path, out_dir: Path, cot_file: Path, steps: int, seed: int) -> Path:
    """A brief SFT (`videor1 sft`) on the CoT targets, so that responses are sometimes right."""
    run = out_dir.with_name(f"{out_dir.name}-sft")
    overrides = {"model.path": model_dir, "model.dtype": "float32", "data.train_file": cot_file,
                 "optim.lr": 3e-3, "optim.schedule": "constant", "optim.max_grad_norm": 1e6,
                 "run.max_steps": steps, "run.prompts_per_device": 8, "run.seed": seed,
                 "run.save_every": steps, "run.output_dir": run, "run.tensorboard": False,
                 **{f"media.{k}": v for k, v in MEDIA.items()}}
    sft.train(sft.load_sft_config(None, [f"{k}={v}" for k, v in overrides.items()]), progress=False)
    shutil.copytree(run / f"checkpoint-{steps}" / "hf", out_dir)
    return out_dir


def prepare(work: Path, supervise_steps: int, seed: int, console: Console) -> Path:
    """The workspace (synthetic data and the supervised tiny model), built once per --work-dir."""
    marker = work / f"formatted-{supervise_steps}-{seed}" / "config.json"
    if marker.exists():
        console.print(f"reusing the workspace in {work}")
        return marker.parent
    started = time.perf_counter()
    synthesize(work / "synth", n=64, seed=seed)
    data = [work / "synth" / "rl_train.json", work / "synth" / "cot_train.json"]
    build_tiny_from_records(work / "tiny", data, "qwen2_5_vl", "tiny", seed)
    supervise(work / "tiny", marker.parent, work / "synth" / "cot_train.json", supervise_steps, seed)
    console.print(f"workspace built in {time.perf_counter() - started:.0f} s "
                  f"({supervise_steps} supervised steps)")
    return marker.parent


def overrides(work: Path, model: Path, out: Path, args, *extra: str) -> list[str]:
    base = {"model.path": model, "model.dtype": "float32",
            "data.train_file": work / "synth" / "rl_train.json",
            "data.max_prompt_tokens": 2048, "sampling.max_new_tokens": args.max_new_tokens,
            "algo.num_generations": args.generations, "algo.num_shuffled": max(1, args.generations // 2),
            "run.max_steps": args.steps + 1, "run.prompts_per_device": args.prompts, "run.seed": args.seed,
            "run.output_dir": out, "run.save_every": 10_000, "run.log_every": 10_000,
            "run.tensorboard": False}
    return [f"media.{k}={v}" for k, v in MEDIA.items()] + [f"{k}={v}" for k, v in base.items()] + list(extra)


# --------------------------------------------------------------------------------------------------
# BASELINE (the reference code's way, for this benchmark only): vision per sequence.
# The trainer encodes each prompt's media once and shares the embeddings with its G sequences; the
# reference code passes the pixels repeated G times, so each of the B*G sequences re-encodes its video.
# --------------------------------------------------------------------------------------------------

def _repeat_pixels(pixels: torch.Tensor, grid: torch.Tensor, times: int) -> torch.Tensor:
    """Each item's patch rows `times` times in a row: pixels (sum_i t_i*h_i*w_i, D), grid (N, 3)."""
    chunks = pixels.split(grid.prod(-1).tolist())
    return torch.cat([chunk for chunk in chunks for _ in range(times)])


def sequence_logprobs_per_sequence(model, batch, completion_ids, completion_mask, group_size, temperature,
                                   vision=None, shared_prefix=False) -> torch.Tensor:
    """Per-token log-probs (B*G, T) like `videor1.models.logprobs.sequence_logprobs`, but `vision` and
    `shared_prefix` are ignored: the model gets `pixel_values(_videos)` repeated per sequence, runs its
    vision tower on all B*G and every sequence runs its whole prompt."""
    G = group_size
    ids = torch.cat([batch["input_ids"].repeat_interleave(G, 0), completion_ids], dim=1)
    attention = torch.cat([batch["attention_mask"].repeat_interleave(G, 0), completion_mask], dim=1)
    types = torch.cat([batch["mm_token_type_ids"].repeat_interleave(G, 0), torch.zeros_like(completion_ids)],
                      dim=1)
    media = {}
    for pixels, grid in (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw")):
        if batch.get(pixels) is not None:
            media[pixels] = _repeat_pixels(batch[pixels], batch[grid], G)
            media[grid] = batch[grid].repeat_interleave(G, 0)
    if "second_per_grid_ts" in batch:
        media["second_per_grid_ts"] = batch["second_per_grid_ts"].repeat_interleave(G, 0)
    length = completion_ids.shape[1]
    out = model(input_ids=ids, attention_mask=attention, mm_token_type_ids=types, logits_to_keep=length + 1,
                use_cache=False, **media)
    logits = out.logits[:, :-1].float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)


@contextlib.contextmanager
def vision_per_sequence():
    """Route the trainer's policy and reference log-prob forwards through the baseline (and skip the
    shared vision pass that the baseline would not use); generation prefills every copy of a prompt."""
    with mock.patch.object(HFEngine, "prefill_once", False), \
            mock.patch.object(rl, "sequence_logprobs", sequence_logprobs_per_sequence), \
            mock.patch.object(logprobs, "sequence_logprobs", sequence_logprobs_per_sequence), \
            mock.patch.object(rl, "encode_vision", lambda model, batch: {}), \
            mock.patch.object(logprobs, "encode_vision", lambda model, batch: {}):
        yield


def check_baseline(work: Path, model_dir: Path, args) -> float:
    """Max |difference| of the shared-vision and per-sequence log-probs on step 0's questions."""
    config = load_config(None, overrides(work, model_dir, work / "unused", args))
    processor = load_processor(model_dir)
    model = load_model(config.model)
    source = QuestionSource(load_records(config.data.train_file), config, processor, SkipLog(), 0, 1)
    prompts = [q.prompt for q in source.questions(0, 0)]
    batch = encode(processor, prompts)
    G = config.algo.num_generations
    with torch.no_grad():
        completions = HFEngine(model, processor).generate(prompts, G, config.sampling, seed=args.seed,
                                                          encoded=EncodedPrompts(batch))
        shared = rl.sequence_logprobs(model, batch, completions.ids, completions.mask, G, 1.0,
                                      encode_vision(model, batch))
        per_sequence = sequence_logprobs_per_sequence(model, batch, completions.ids, completions.mask, G, 1.0)
    return float(((shared - per_sequence) * completions.mask).abs().max())


# --------------------------------------------------------------------------------------------------
# The arms.
# --------------------------------------------------------------------------------------------------

ARMS = [
    ("GRPO", ["algo.name=grpo"], False),
    ("T-GRPO, reference way", ["algo.name=tgrpo", "media.shuffle=frame", "algo.skip_shuffled=false"], True),
    ("T-GRPO, our way", ["algo.name=tgrpo"], False),
]


def run_arm(work: Path, model_dir: Path, args, name: str, extra: list[str], per_sequence: bool,
            round_: int) -> dict:
    """Train 1 + steps steps; per timed step the wall clock and the process's CPU time between
    consecutive metrics lines, and the metrics."""
    out = work / "runs" / f"{name.replace(' ', '').replace(',', '_')}-{round_}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, also when --work-dir is reused
    config = load_config(None, overrides(work, model_dir, out, args, *extra))
    stamps: list[tuple[float, float]] = []
    original_log = metrics_module.MetricsWriter.log

    def timed_log(self, step, metrics):
        original_log(self, step, metrics)
        stamps.append((time.perf_counter(), time.process_time()))

    with mock.patch.object(metrics_module.MetricsWriter, "log", timed_log), \
            (vision_per_sequence() if per_sequence else contextlib.nullcontext()):
        rl.train(config, progress=False)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:]  # no warm-up
    return {"wall": [b[0] - a[0] for a, b in zip(stamps, stamps[1:])],
            "cpu": [b[1] - a[1] for a, b in zip(stamps, stamps[1:])], "metrics": lines}


def summarize(name: str, runs: list[dict]) -> dict:
    """Medians over every timed step of every round; metrics averaged."""
    lines = [m for run in runs for m in run["metrics"]]
    groups = sum(m.get("temporal/video_groups") or 0 for m in lines)
    generated = sum((m.get("temporal/video_groups") or 0) * (1 - m["temporal/shuffled_skipped"])
                    for m in lines if m.get("temporal/shuffled_skipped") is not None)
    return {"wall": statistics.mean(w for run in runs for w in run["wall"]),
            "median": statistics.median(w for run in runs for w in run["wall"]),
            "cpu": statistics.mean(c for run in runs for c in run["cpu"]),
            "rollout": statistics.mean(m["time/rollout"] for m in lines),
            "update": statistics.mean(m["time/update"] for m in lines),
            "generated": generated / groups if groups and name != "GRPO" else None,
            "accuracy": statistics.mean(m["reward/accuracy"] for m in lines),
            "length": statistics.mean(m["response/length"] for m in lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8,
                        help="timed steps per arm, after 1 warm-up step (default 8)")
    parser.add_argument("--prompts", type=int, default=4, help="questions per step (default 4)")
    parser.add_argument("--generations", type=int, default=4,
                        help="G, responses per question (default 4; G~ = G/2)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="longest response (default 64)")
    parser.add_argument("--supervise-steps", type=int, default=80,
                        help="supervised warm-up steps (default 80)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="run the three arms this many times, in rotated order, and pool the steps "
                             "(default 3): "
                             "other processes on the machine then slow every arm alike")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a shared 2-core machine, 2 threads "
                             "spin-wait whenever another process runs and steps get 5-10x slower; 0 keeps "
                             "torch's default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, model, sampling (default 0)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="workspace, reused between runs (default: a fresh temporary directory)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    console = Console() if Console().is_terminal else Console(width=130)
    with contextlib.ExitStack() as stack:
        temporary = tempfile.TemporaryDirectory(prefix="videor1-rl-bench-")
        work = args.work_dir or Path(stack.enter_context(temporary))
        work.mkdir(parents=True, exist_ok=True)
        model_dir = prepare(work, args.supervise_steps, args.seed, console)
        difference = check_baseline(work, model_dir, args)
        console.print("baseline check: max |log-prob difference|, vision per sequence vs shared: "
                      f"{difference:.2e}"
                      + ("" if difference <= 1e-5 else "  [bold red]ABOVE 1e-5[/]"))
        load_before = os.getloadavg()[0]
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in ARMS}
        for round_ in range(args.rounds):
            for name, extra, per_sequence in ARMS[round_ % 3:] + ARMS[:round_ % 3]:
                runs[name].append(run_arm(work, model_dir, args, name, extra, per_sequence, round_))
                console.print(f"round {round_ + 1}, {name}: steps "
                              + " ".join(f"{w:.2f}" for w in runs[name][-1]["wall"]) + " s")
        results = {name: summarize(name, runs[name]) for name, _, _ in ARMS}
        load_after = os.getloadavg()[0]

    grpo, reference = results["GRPO"]["wall"], results["T-GRPO, reference way"]["wall"]
    table = Table(title=f"RL step, {args.prompts} prompts x G={args.generations}, {args.max_new_tokens} new "
                        f"tokens: mean of {args.steps} steps x {args.rounds} rounds (wall clock between "
                        "metrics lines)")
    for column in ("arm", "s/step", "vs GRPO", "vs ref. way", "median s/step", "shuffled generated",
                   "CPU s/step", "rollout s", "update s", "other s", "accuracy", "tokens"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for name, r in results.items():
        table.add_row(name, f"{r['wall']:.3f}", f"{r['wall'] / grpo:.2f}x", f"{r['wall'] / reference:.2f}x",
                      f"{r['median']:.2f}", "-" if r["generated"] is None else f"{r['generated']:.0%}",
                      f"{r['cpu']:.2f}", f"{r['rollout']:.2f}", f"{r['update']:.2f}",
                      f"{r['wall'] - r['rollout'] - r['update']:.2f}",
                      f"{r['accuracy']:.2f}", f"{r['length']:.1f}")
    console.print(table)
    console.print("CPU s/step: this process's CPU time (all threads) per step, less sensitive to other "
                  "processes. rollout, update: the trainer's time/rollout and time/update (means); "
                  "other = s/step - both: "
                  "question preparation, the reference log-prob forward, logging.")
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
                  f"1-min load average {load_before:.1f} before, {load_after:.1f} after (other processes "
                  "skew timings).")


if __name__ == "__main__":
    main()
