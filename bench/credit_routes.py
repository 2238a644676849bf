"""Can the per-response temporal credit tell which route a response took? (docs/demo.md, round N)

    python bench/credit_routes.py --model run/sft/checkpoint-900/hf --data run/data/eval.json \
        [--batches 6] [--prompts 8] [--generations 8] [--max-new-tokens 96] [--cache-dir DIR]

On the cue-conflicting direction questions of a shortcut split (records with `cue: conflicting` and a
`cue_solution`, `data synth` with `shortcut:`), where the colour names another direction than the motion,
a response's answer shows its route: the true direction (it read the order) or the colour's (it took the
cue). The model samples G responses per question at temperature 1; each response's order reliance,
log pi(o | ordered frames) - log pi(o | shuffled frames), is measured as the credit measures it
(`videor1.train.rollout_step.teacher_force`, `temporal_patch` shuffling), summed over the whole
response (`algo.credit_span=response`) and over the final answer's tokens (`answer`). The table: per
route, the responses' count and their reliance's median and mean, and per statistic the AUC, the chance
that a response answering the truth relies on the order more than one following the cue (0.5: the credit
cannot tell them apart; 1: a threshold separates them), and the share above a few thresholds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from videor1.algo import is_correct  # noqa: E402
from videor1.data import load_records  # noqa: E402
from videor1.media.loader import SkipLog  # noqa: E402
from videor1.models.inputs import encode  # noqa: E402
from videor1.models.loading import ModelOptions, load_model, load_processor  # noqa: E402
from videor1.models.vision import encode_vision  # noqa: E402
from videor1.rewards import accuracy_rewards  # noqa: E402
from videor1.rollout.base import EncodedPrompts  # noqa: E402
from videor1.rollout.hf import HFEngine  # noqa: E402
from videor1.train.config import load_config  # noqa: E402
from videor1.train.data import QuestionSource  # noqa: E402
from videor1.train.rollout_step import teacher_force  # noqa: E402

SPANS = ("response", "answer")


def measure(args) -> list[dict]:
    """One row per sampled response: its route (truth / cue / neither) and its reliance per span."""
    config = load_config(None, [
        f"model.path={args.model}", f"data.train_file={args.data}", f"run.prompts_per_device={args.prompts}",
        f"algo.num_generations={args.generations}",
        f"sampling.max_new_tokens={args.max_new_tokens}", f"run.seed={args.seed}",
        f"media.nframes={args.frames}", f"media.video_min_pixels={args.pixels}",
        f"media.video_max_pixels={args.pixels}"]
        + ([f"media.cache_dir={args.cache_dir}"] if args.cache_dir else []))
    processor = load_processor(args.model)
    model = load_model(ModelOptions(path=args.model, dtype="float32")).eval()
    loaded = load_records(args.data)
    conflicting = [r for r in loaded.records if getattr(r, "cue", None) == "conflicting"]
    if not conflicting:
        raise SystemExit(f"{args.data}: no record with cue 'conflicting' (a shortcut split of `data synth`)")
    source = QuestionSource(replace(loaded, records=conflicting), config, processor, SkipLog(), 0, 1)
    engine, G, algo, rows = HFEngine(model, processor), args.generations, config.algo, []
    for batch in range(args.batches):
        questions = source.questions(batch, 0)
        inputs = encode(processor, [q.prompt for q in questions])
        with torch.no_grad():
            vision = encode_vision(model, inputs)
        completions = engine.generate([q.prompt for q in questions], G, config.sampling,
                                      seed=args.seed + batch, encoded=EncodedPrompts(inputs, vision))
        videos = [b for b, q in enumerate(questions) if q.prompt.video is not None]
        # one pair of teacher-forced forwards, its reliance summed both ways
        forced = teacher_force(questions, videos, inputs, vision, completions, config, model, batch, 0)
        reliance = {span: forced.reliance(len(questions) * G, span, processor.tokenizer) for span in SPANS}
        for b in videos:
            record = questions[b].record
            for i in range(b * G, (b + 1) * G):
                scores = torch.tensor(accuracy_rewards([completions.texts[i]] * 2,
                                                       [record.solution, record.cue_solution],
                                                       [record.problem_type] * 2, [record.options] * 2))
                truth, cue = is_correct(scores, algo.correct_threshold, algo.correct_rule).tolist()
                route = "truth" if truth else "cue" if cue else "neither"
                rows.append({"route": route, **{span: float(reliance[span][i]) for span in SPANS}})
    return rows


def auc(higher: list[float], lower: list[float]) -> float:
    """P(a value of `higher` > one of `lower`), ties counting one half (the Mann-Whitney statistic)."""
    wins = sum((a > b) + 0.5 * (a == b) for a in higher for b in lower)
    return wins / (len(higher) * len(lower))


def report(rows: list[dict], thresholds: list[float], console: Console) -> None:
    routes = Table(title="Order reliance (nats) of the responses to cue-conflicting questions, by route")
    stats = [f"{span}: {stat}" for span in SPANS for stat in ("median", "mean")]
    for column in ("route", "responses", *stats):
        routes.add_column(column, justify="left" if column == "route" else "right")
    for route in ("truth", "cue", "neither"):
        values = [r for r in rows if r["route"] == route]
        cells = [f"{f([r[span] for r in values]):.2f}" if values else "-"
                 for span in SPANS for f in (statistics.median, statistics.mean)]
        routes.add_row(route, str(len(values)), *cells)
    console.print(routes)
    split = Table(title="Does the reliance separate the routes? (truth vs cue)")
    for column in ("summed over", "AUC", *(f"> {t:g} nats: truth / cue" for t in thresholds)):
        split.add_column(column, justify="left" if column == "summed over" else "right")
    for span in SPANS:
        truth = [r[span] for r in rows if r["route"] == "truth"]
        cue = [r[span] for r in rows if r["route"] == "cue"]
        if not truth or not cue:
            split.add_row(span, "-", *("-" for _ in thresholds))
            continue
        shares = [f"{sum(v > t for v in truth) / len(truth):.0%} / {sum(v > t for v in cue) / len(cue):.0%}"
                  for t in thresholds]
        split.add_row(span, f"{auc(truth, cue):.3f}", *shares)
    console.print(split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="checkpoint directory (hf/)")
    parser.add_argument("--data", type=Path, required=True,
                        help="a shortcut split (eval.json of `data synth` with shortcut:)")
    parser.add_argument("--batches", type=int, default=6, help="batches of questions (default 6)")
    parser.add_argument("--prompts", type=int, default=8, help="questions per batch (default 8)")
    parser.add_argument("--generations", type=int, default=8, help="responses per question (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="longest response (default 96)")
    parser.add_argument("--frames", type=int, default=8, help="frames per video (default 8, the demo's)")
    parser.add_argument("--pixels", type=int, default=7056,
                        help="pixels per frame (default 7056, the demo's)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.2, 5.0, 10.0],
                        help="reliance thresholds to count (nats; default 0.2 5 10)")
    parser.add_argument("--seed", type=int, default=0, help="sampling and shuffling seed (default 0)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="decoded-frame cache (media.cache_dir)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console() if Console().is_terminal else Console(width=140)
    report(measure(args), args.thresholds, console)


if __name__ == "__main__":
    main()
