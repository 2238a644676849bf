"""The demo's report: training curves like the paper's Figure 5, an ablation table like its Table 2,
how often the temporal bonus changed the advantages, wall-clock per stage, the exact configs and
commands, and the library versions — as `report/report.md` (PNG plots beside it) and a
self-contained `report/report.html` (plots inlined).

Everything is read back from what the stages wrote: `rl/<run>/metrics.jsonl`,
`eval/<model>/synthetic.summary.json` (and `eval-train/<model>/…`, the RL training distribution's
held-out items), `stages/*.json` and each run's resolved `config.yaml`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from videor1.demo.recipe import Arm, Budget, DemoRecipe
from videor1.eval.report import SUMMARY_SUFFIX, BenchmarkSummary, markdown_table


class Demo(Protocol):
    """What the report reads of a demo run (`videor1.demo.pipeline.Demo`, which writes the report: the
    report does not import the pipeline)."""

    out: Path
    recipe: DemoRecipe
    budget: Budget
    budget_name: str
    seeds: int
    versions: dict[str, str]

    def runs(self) -> list[tuple[Arm, int, str]]: ...

    def stages(self) -> list: ...

CURVES = (("response/correct", "correct answers\n(share of RL's responses)"),
          ("shortcut/follows_cue", "answers that follow the colour cue\n(share, cue-conflicting questions)"),
          ("temporal/granted", "temporal bonus granted\n(share of video groups)"),
          ("temporal/changed_advantages", "bonus changed the advantages\n(share of video groups)"),
          ("response/length", "response length (tokens)"))
# One line style per arm besides its colour: arms whose curves coincide stay visible.
STYLES = ("-", "--", ":", "-.")
# The ablation's columns: (name, breakdown, value, field of the reliance row). The shortcut's split
# (docs/demo.md): "cue" breaks the direction questions into cue-consistent / cue-conflicting items.
COLUMNS = (("conflicting ordered", "cue", "conflicting", "ordered"),
           ("conflicting shuffled", "cue", "conflicting", "shuffled"),
           ("consistent ordered", "cue", "consistent", "ordered"),
           ("temporal ordered", "temporal", "temporal", "ordered"),
           ("temporal shuffled", "temporal", "temporal", "shuffled"),
           ("temporal reliance", "temporal", "temporal", "gap"),
           ("static ordered", "temporal", "static", "ordered"))


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        return "\n".join(markdown_table(self.header, self.rows))

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean_spread(values: list[float]) -> str:
    """Percent, mean ± sample standard deviation over seeds (just the mean for one seed)."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean = 100 * statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}"


def _eval_summary(demo: Demo, model: str, folder: str = "eval") -> BenchmarkSummary | None:
    """A model's synthetic-benchmark summary: eval/ (the decorrelated split) or eval-train/ (rl_eval.json)."""
    path = demo.out / folder / model / f"synthetic{SUMMARY_SUFFIX}"
    return BenchmarkSummary.model_validate_json(path.read_text()) if path.is_file() else None


def _scores(summary: BenchmarkSummary | None) -> dict[str, float | None]:
    """Mean score (accuracy; MRA for regression items) per column of `COLUMNS`, and of all items ordered."""
    if summary is None or summary.temporal_reliance is None:
        return {}
    breakdowns = summary.temporal_reliance.breakdowns
    found = {}
    for name, breakdown, value, field in COLUMNS:
        row = breakdowns.get(breakdown, {}).get(value)
        found[name] = getattr(row, field) if row else None
    found["all ordered"] = summary.temporal_reliance.overall.ordered
    return found


def ablation_table(demo: Demo) -> Table:
    columns = [name for name, *_ in COLUMNS] + ["all ordered"]
    groups = {"SFT (before RL)": ["sft"]}
    for arm in demo.recipe.arms:
        groups[arm.title] = [run for a, _, run in demo.runs() if a.name == arm.name]
    rows = []
    for title, models in groups.items():
        scores = [_scores(_eval_summary(demo, m)) for m in models]
        rows.append([title, str(len([s for s in scores if s]))] +
                    [mean_spread([s.get(c) for s in scores if s]) for c in columns])
    return Table(["model", "seeds", *columns], rows)


def best_gap(demo: Demo, column: str = "conflicting ordered") -> str:
    """The best temporal-reward arm against GRPO on `column`: the gap of the means, and the spread (sample
    standard deviation over seeds) of both, in points — the issue's target is a gap of 10 points or more
    with spreads smaller than the gap."""
    per_arm = {}
    for arm in demo.recipe.arms:
        values = [_scores(_eval_summary(demo, run)).get(column) for a, _,
                  run in demo.runs() if a.name == arm.name]
        values = [100 * v for v in values if v is not None]
        if values:
            per_arm[arm.name] = (arm.title, values)
    if "grpo" not in per_arm or len(per_arm) < 2:
        return ""
    base = per_arm.pop("grpo")[1]
    title, best = max(per_arm.values(), key=lambda item: statistics.fmean(item[1]))

    def spread(values: list[float]) -> str:
        return f"± {statistics.stdev(values):.1f}" if len(values) > 1 else "(one seed: spread not measured)"

    return (f"Best arm on {column}: {title}, {statistics.fmean(best):.1f} {spread(best)} against GRPO's "
            f"{statistics.fmean(base):.1f} {spread(base)}: a gap of "
            f"{statistics.fmean(best) - statistics.fmean(base):+.1f} points ({len(best)} seed(s)).")


def bonus_table(demo: Demo) -> Table:
    """Per T-GRPO arm: share of video groups granted the bonus, whose advantages it changed, and whose
    shuffled group was skipped because it could not matter (weighted by video groups per step)."""
    rows = []
    for arm in demo.recipe.arms:
        per_seed = {"granted": [], "changed": [], "skipped": []}
        for a, _, run in demo.runs():
            if a.name != arm.name:
                continue
            steps = [m for m in read_metrics(demo.out / "rl" / run / "metrics.jsonl")
                     if m.get("temporal/video_groups")]
            if not steps:
                continue
            weights = [m["temporal/video_groups"] for m in steps]
            for key, name in (("temporal/granted", "granted"), ("temporal/changed_advantages", "changed"),
                              ("temporal/shuffled_skipped", "skipped")):
                pairs = [(m[key], w) for m, w in zip(steps, weights) if m.get(key) is not None]
                if pairs:
                    per_seed[name].append(sum(v * w for v, w in pairs) / sum(w for _, w in pairs))
        if per_seed["changed"]:
            rows.append([arm.title, mean_spread(per_seed["granted"]), mean_spread(per_seed["changed"]),
                         mean_spread(per_seed["skipped"])])
    return Table(["T-GRPO arm", "bonus granted (% of video groups)", "bonus changed the advantages (%)",
                  "shuffled group skipped (%)"], rows)


def _train_eval(demo: Demo, model: str) -> dict[str, float | None]:
    """A model's scores on rl_eval.json (eval-train/<model>): all items and the direction questions."""
    summary = _eval_summary(demo, model, "eval-train")
    ordered = summary.conditions.get("ordered") if summary is not None else None
    if ordered is None:
        return {}
    direction = ordered.breakdowns.get("task", {}).get("direction")
    return {"all": ordered.overall, "direction": direction.score if direction else None}


def learning_table(demo: Demo) -> Table:
    """On the RL training distribution (where the colour names the direction 90 % of the time), per model:
    the score on its held-out items (rl_eval.json, sampled as RL samples; the SFT model's row is where RL
    started) and, from each arm's own rollouts, the share of correct responses (the paper's rule, §3.2:
    accuracy reward >= 0.5; the free-form reward, mean ROUGE-1/2/L, gives a right one-word answer only
    2/3, so the reward's mean understates it) and the share of answers to cue-conflicting questions that
    follow the cue, over the first and the last fifth of the RL steps (mean ± spread over seeds): whether
    RL learned, and which route it took. A fifth, not less: few RL questions are cue-conflicting, and
    a step's batch decides much of its score (every arm reads the questions in the same order)."""
    held_out, rollouts = ("all", "direction"), ("response/correct", "shortcut/follows_cue")
    sft = _train_eval(demo, "sft")
    rows = [["SFT (before RL)", *(mean_spread([sft.get(key)]) for key in held_out), "–", "–", "–", "–"]]
    for arm in demo.recipe.arms:
        per_seed: dict[str, list[float]] = {}
        for a, _, run in demo.runs():
            if a.name != arm.name:
                continue
            for key, value in _train_eval(demo, run).items():
                per_seed.setdefault(key, []).append(value)
            steps = read_metrics(demo.out / "rl" / run / "metrics.jsonl")
            fifth = max(1, len(steps) // 5)
            for key, weight in zip(rollouts, (None, "shortcut/conflicting")):
                for part, window in (("first", steps[:fifth]), ("last", steps[-fifth:])):
                    pairs = [(m[key], m[weight] if weight else 1.0) for m in window
                             if m.get(key) is not None and (weight is None or m.get(weight))]
                    if pairs:  # follows_cue weighted by the cue-conflicting answers behind it
                        per_seed.setdefault(f"{key} {part}", []).append(
                            sum(v * w for v, w in pairs) / sum(w for _, w in pairs))
        if per_seed:
            rows.append([arm.title] + [mean_spread(per_seed.get(key, [])) for key in held_out] +
                        [mean_spread(per_seed.get(f"{key} {part}", []))
                         for key in rollouts for part in ("first", "last")])
    return Table(["model", "held-out items", "held-out direction questions",
                  "RL's correct responses, first 20 % of steps", "last 20 %",
                  "answers following the cue (cue-conflicting), first 20 %", "last 20 %"], rows)


def _markers(demo: Demo) -> list[dict]:
    """What each finished stage recorded (commands, seconds), in pipeline order, with `finished`: the
    time its marker was written."""
    paths = [demo.out / "stages" / f"{stage.name}.json" for stage in demo.stages()]
    return [{**json.loads(p.read_text()), "finished": p.stat().st_mtime} for p in paths if p.is_file()]


def time_table(demo: Demo) -> tuple[Table, float, float]:
    """Minutes per stage; the sum of the stages' times and the elapsed time from the first stage's start
    to the last one's end (less than the sum when stages ran side by side; interruptions included)."""
    markers = _markers(demo)
    rows = [[info["stage"], f"{info['seconds'] / 60:.1f}", info.get("note", "")] for info in markers]
    total = sum(info["seconds"] for info in markers)
    elapsed = (max(m["finished"] for m in markers) - min(m["finished"] - m["seconds"] for m in markers)
               if markers else 0.0)
    return Table(["stage", "minutes", "note"], rows), total, elapsed


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], []
    for v in values:
        acc.append(v)
        acc = acc[-window:]
        out.append(sum(acc) / len(acc))
    return out


def plot_curves(demo: Demo, path: Path) -> Path:
    """Figure 5 of the paper, per arm (mean over seeds, moving average over ~5% of the steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows = -(-(len(CURVES) + 1) // columns)  # one panel more than curves: the legend's
    fig, grid = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.2 * rows))
    axes, legend_ax = grid.flat[: len(CURVES)], grid.flat[-1]
    window = max(1, demo.budget.rl_steps // 20)
    for index, arm in enumerate(demo.recipe.arms):  # one colour per arm in every panel
        runs = [read_metrics(demo.out / "rl" / run / "metrics.jsonl") for a, _,
                run in demo.runs() if a.name == arm.name]
        for ax, (key, label) in zip(axes, CURVES):
            by_step: dict[int, list[float]] = {}
            for metrics in runs:
                for m in metrics:
                    if m.get(key) is not None and math.isfinite(m[key]):
                        by_step.setdefault(m["step"], []).append(m[key])
            if by_step:
                steps = sorted(by_step)
                ax.plot(steps, _smooth([statistics.fmean(by_step[s]) for s in steps], window),
                        label=arm.title, color=f"C{index}", linestyle=STYLES[index % len(STYLES)])
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("RL step", fontsize=8)
            ax.tick_params(labelsize=7)
    for ax in grid.flat[len(CURVES):]:
        ax.axis("off")
    handles = {h.get_label(): h for ax in axes for h in ax.get_lines()}
    legend_ax.legend(list(handles.values()), list(handles), loc="center", fontsize=8, frameon=False,
                     title=f"mean over seeds, moving average of {window} steps", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_ablation(table: Table, path: Path) -> Path:
    """Per model (mean over seeds): cue-conflicting direction questions with ordered and shuffled frames,
    and static questions — what a model that reads the order gets right and a cue-reader does not."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def mean(cell: str) -> float:
        return float(cell.split(" ")[0]) if cell != "–" else 0.0

    column = {name: 2 + i for i, name in enumerate(table.header[2:])}
    bars = (("conflicting ordered", "cue-conflicting direction,\nordered frames"),
            ("conflicting shuffled", "cue-conflicting direction,\nshuffled frames"),
            ("static ordered", "static questions,\nordered frames"))
    names = [textwrap.fill(row[0], 16) for row in table.rows]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.35 * len(names)), 4.4))
    width = 0.8 / len(bars)
    for k, (key, label) in enumerate(bars):
        values = [mean(row[column[key]]) for row in table.rows]
        ax.bar([i + (k - (len(bars) - 1) / 2) * width for i in range(len(names))], values, width=width,
               label=label)
    ax.set_xticks(list(range(len(names))), names, fontsize=7)
    ax.set_ylabel("score %")
    ax.set_ylim(0, 100)
    # the legend above the axes: inside, it covered the last model's bars
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(bars), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_report(demo: Demo) -> Path:
    """report/report.md and report/report.html; returns the Markdown path."""
    out = demo.out / "report"
    out.mkdir(parents=True, exist_ok=True)
    ablation = ablation_table(demo)
    bonus = bonus_table(demo)
    learning = learning_table(demo)
    times, total, elapsed = time_table(demo)
    plots = [plot_curves(demo, out / "curves.png"), plot_ablation(ablation, out / "ablation.png")]
    versions = Table(["library", "version"], [[k, v] for k, v in demo.versions.items()])
    b = demo.budget
    intro = (f"Budget `{demo.budget_name}`: {b.synth_n} synthetic records per training split, perception "
             f"{b.perception_steps} steps, SFT {b.sft_steps} steps, RL {b.rl_steps} steps per arm, "
             f"{demo.seeds} seed(s) per arm; wall-clock {elapsed / 60:.1f} min from the first stage's start "
             f"to the last one's end ({total / 60:.1f} min of stage time, stages running side by side).")
    score_note = ("Scores in %: accuracy on the synthetic evaluation split (regression items scored with "
                  "MRA), greedy decoding, with ordered frames and with each video's 2-frame temporal patches "
                  "shuffled. In this split an object's colour is independent of its direction: 'conflicting' "
                  "/ 'consistent' are the direction questions whose colour names another / the true "
                  "direction (in RL training the colour names the true one 90 % of the time). Temporal "
                  "reliance = ordered − shuffled on all temporal questions. Mean ± sample standard deviation "
                  "over seeds. Chance is 25 % on direction.")
    configs = _configs(demo)
    sections = [
        ("Training curves (like Figure 5)", "curves"),
        ("On the training distribution", "In %. Held-out items: rl_eval.json, questions of the RL "
         "training distribution (its mix, the colour naming the direction 90 % of the time) on scenes no "
         "stage trained on, answered once each at the RL sampling temperature. Then RL's own rollouts: "
         "the share of correct responses (accuracy reward ≥ 0.5, the paper's rule in §3.2; a right one-word "
         "free-form answer earns a ROUGE reward of only 2/3) and the share of answers to cue-conflicting "
         "direction questions that name the colour's direction, early and late in RL.",
         learning),
        ("Ablation (like Table 2)", score_note, ablation, best_gap(demo), best_gap(demo, "temporal reliance"),
         "ablation"),
        ("Where the temporal bonus "
         "acted", "Shares of the video groups of every RL step, averaged over the run.",
         bonus),
        ("Wall-clock per stage", times),
        ("Library versions", versions),
    ]
    md = ["# videor1 demo report", "", intro, ""]
    page = [f"<h1>videor1 demo report</h1><p>{html.escape(intro)}</p>"]
    images = {p.stem: p for p in plots}
    for title, *parts in sections:
        md += [f"## {title}", ""]
        page.append(f"<h2>{html.escape(title)}</h2>")
        for part in parts:
            if part == "":  # a sentence with nothing to say (e.g. no GRPO arm to compare with)
                continue
            if isinstance(part, Table):
                md += [part.markdown(), ""]
                page.append(part.html())
            elif part in images:
                md += [f"![{title}]({images[part].name})", ""]
                data = base64.b64encode(images[part].read_bytes()).decode()
                page.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">')
            else:
                md += [part, ""]
                page.append(f"<p>{html.escape(part)}</p>")
    md += ["## Commands and configs", ""]
    page.append("<h2>Commands and configs</h2>")
    for name, (commands, config) in configs.items():
        md += [f"### {name}", "", "```", *commands, "```", ""]
        page.append(f"<details><summary>{html.escape(name)}</summary><pre>{html.escape(chr(10).join(commands))}</pre>")
        if config:
            md += ["```yaml", config.rstrip(), "```", ""]
            page.append(f"<pre>{html.escape(config)}</pre>")
        page.append("</details>")
    md_path = out / "report.md"
    md_path.write_text("\n".join(md), encoding="utf-8")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
             "pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}")
    (out / "report.html").write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>videor1 demo"
                                     f"</title><style>{style}</style></head><body>{''.join(page)}</body></html>",
                                     encoding="utf-8")
    return md_path


def _configs(demo: Demo) -> dict[str, tuple[list[str], str]]:
    """Stage name -> (its commands, the resolved config its training run saved)."""
    found = {}
    for info in _markers(demo):
        name = info["stage"]
        run_dir = {"base": demo.out / "perception", "sft": demo.out / "sft"}.get(name)
        if name.startswith("rl/"):
            run_dir = demo.out / name
        config = run_dir / "config.yaml" if run_dir is not None else None
        found[name] = (info["commands"],
                       config.read_text() if config is not None and config.is_file() else "")
    return found
