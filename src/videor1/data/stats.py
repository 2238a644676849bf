"""Distribution of a record file by data type, problem type and source (table and bar chart)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videor1.data.loading import BadLine

FIELDS = ("data_type", "problem_type", "data_source")


@dataclass
class Distribution:
    total: int
    counts: dict[str, Counter]  # field -> value -> count
    unreadable: list[str]  # JSONL lines that are not JSON, by line number (not counted)


def distribution(rows: list[Any]) -> Distribution:
    """Counts per field over raw records (a missing field counts as "?"). A row that is no JSON object
    (a JSONL line that is not JSON, a number) is left out and listed in `unreadable`."""
    counts = {name: Counter() for name in FIELDS}
    unreadable = [row.describe() if isinstance(row, BadLine) else f"record #{index}: a {type(row).__name__}, "
                  "not a JSON object" for index, row in enumerate(rows) if not isinstance(row, dict)]
    rows = [row for row in rows if isinstance(row, dict)]
    for row in rows:
        for name in FIELDS:
            value = row.get(name)
            counts[name][str(value) if value is not None else "?"] += 1
    return Distribution(total=len(rows), counts=counts, unreadable=unreadable)


def plot_distribution(dist: Distribution, path: str | Path, title: str = "") -> Path:
    """A PNG with one horizontal bar chart per field."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [max(1.5, 0.35 * len(dist.counts[name]) + 0.8) for name in FIELDS]
    fig, axes = plt.subplots(len(FIELDS), 1, figsize=(7, sum(heights)),
                             gridspec_kw={"height_ratios": heights})
    for ax, name in zip(axes, FIELDS):
        items = dist.counts[name].most_common()[::-1]
        labels, values = [label for label, _ in items], [value for _, value in items]
        bars = ax.barh(labels, values, color="#4C72B0")
        ax.bar_label(bars, labels=[f"{v} ({v / max(dist.total, 1):.0%})" for v in values], padding=3,
                     fontsize=8)
        ax.set_title(name.replace("_", " "), fontsize=10, loc="left")
        ax.margins(x=0.25)
        ax.tick_params(labelsize=8)
    fig.suptitle(title or f"{dist.total} records", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
