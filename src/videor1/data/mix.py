"""Building a training file from several sources (the paper's Figure 2 composition).

A mix config (YAML) names each source with a count or a ratio of `total`:

    seed: 0
    total: 260000
    sources:
      - {name: general_video, path: video.json, ratio: 0.446}
      - {name: chart, path: chart.json, count: 21000, media_root: /data/chart}
      - {name: spatial, path: all.json, count: 20000, where: {data_source: [SAT, SPAR]}}

Draws are deterministic for a seed; each output record keeps where it came from in `provenance`,
and its media path is rewritten relative to the output's media root so that it still resolves.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from videor1.data.loading import relocated_path
from videor1.data.records import RECORD_KINDS, Record
from videor1.data.validate import BadRecord, MediaOpener, validate_records


class MixSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Category name recorded in each record's provenance (e.g. 'chart').")
    path: Path = Field(description="Record file (.json / .jsonl / saved datasets dir), relative to the "
                                   "config.")
    media_root: Path | None = Field(default=None, description="Media root of this source (default: its "
                                    "file's directory).")
    count: int | None = Field(default=None, ge=0, description="How many records to draw.")
    ratio: float | None = Field(default=None, ge=0.0, le=1.0, description="Share of `total` to draw.")
    replace: bool = Field(default=False, description="Allow drawing more records than the source has "
                                                     "(repeats).")
    where: dict[str, Any] = Field(
        default_factory=dict,
        description="Keep only records whose fields have these values (a list: any of them), "
        "e.g. {data_type: video, data_source: [a, b], temporal: true}.",
    )

    def keeps(self, record: Record) -> bool:
        fields = record.model_dump()
        return all(fields.get(key) in (wanted if isinstance(wanted, list) else [wanted])
                   for key, wanted in self.where.items())

    @model_validator(mode="after")
    def _one_amount(self) -> MixSource:
        if (self.count is None) == (self.ratio is None):
            raise ValueError(f"source {self.name!r}: give exactly one of `count` or `ratio`")
        return self


class MixConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, description="Seed of every draw and of the final shuffle.")
    total: int | None = Field(default=None, ge=1, description="Size the ratios refer to.")
    kind: str = Field(default="train", description="Record schema of the sources: train, cot or eval.")
    shuffle: bool = Field(default=True, description="Shuffle the mixed records (else sources stay in order).")
    allow_outside_media_root: bool = Field(
        default=False, description="Accept sources' media outside their media root, and write records whose "
        "media lie outside the output's media root.")
    sources: list[MixSource] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> MixConfig:
        if self.kind not in RECORD_KINDS:
            raise ValueError(f"kind must be one of {sorted(RECORD_KINDS)}, got {self.kind!r}")
        if any(s.ratio is not None for s in self.sources) and self.total is None:
            raise ValueError("sources given by `ratio` need `total`")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {names}")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> MixConfig:
        """Load a config; relative source paths are taken relative to the config file."""
        path = Path(path)
        config = cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        for source in config.sources:
            source.path = (path.parent / source.path).resolve()
            if source.media_root is not None:
                source.media_root = (path.parent / source.media_root).resolve()
        return config


@dataclass
class MixResult:
    records: list[dict]
    drawn: dict[str, int]
    available: dict[str, int]
    skipped: dict[str, list[BadRecord]]


def _source_rng(seed: int, name: str) -> random.Random:
    # A per-source stream: adding or reordering sources does not change the other sources' draws.
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _draw(n_available: int, n_wanted: int, replace: bool, rng: random.Random, name: str) -> list[int]:
    if n_wanted > n_available and not replace:
        raise ValueError(f"source {name!r} has {n_available} good records, {n_wanted} requested; "
                         "set `replace: true` to repeat records")
    if n_available == 0:
        return []
    # with repeats, every record is used floor(k / n) times before any is used once more
    full_passes, rest = divmod(n_wanted, n_available)
    indices = [i for _ in range(full_passes) for i in range(n_available)] + rng.sample(range(n_available),
                                                                                       rest)
    return indices


def mix_records(config: MixConfig, out_media_root: str | Path, open_media: MediaOpener | None = None
                ) -> MixResult:
    """Draw each source's share of valid records and return them (as JSON objects) with provenance.

    `open_media` (`videor1.media.open_problem`) opens every media file, as `data validate` does; without
    it a record's media must only exist."""
    out_root = Path(out_media_root).resolve()
    rows, drawn, available, skipped = [], {}, {}, {}
    for source in config.sources:
        # the same checks as `videor1 data validate`: a mix never contains a record it would reject
        checked = validate_records(source.path, config.kind, source.media_root,
                                   "open" if open_media is not None else "exists",
                                   allow_outside_media_root=config.allow_outside_media_root,
                                   open_media=open_media)
        pool = [record for record in checked.good if source.keeps(record)]
        if not checked.good:
            first = f"; first: {checked.bad[0].describe()}" if checked.bad else ""
            raise ValueError(f"source {source.name!r}: {source.path} has no valid record ({len(checked.bad)} "
                             f"bad{first})")
        wanted = source.count if source.count is not None else round(source.ratio * config.total)
        indices = _draw(len(pool), wanted, source.replace, _source_rng(config.seed, source.name), source.name)
        for index in indices:
            record = pool[index]
            row = record.model_dump(mode="json")
            row["path"] = relocated_path(record, checked.media_root, out_root)
            if not config.allow_outside_media_root and Path(row["path"]).parts[0] == "..":
                raise ValueError(f"source {source.name!r}: the media of {record.label} ({record.path!r}) lie "
                                 f"outside the output's media root {out_root}, so readers of the mix would "
                                 "refuse it: give --media-root a directory holding every source's media (and "
                                 "train with that data.media_root), or set allow_outside_media_root")
            row["provenance"] = {"source": source.name, "file": str(source.path),
                                 "problem_id": record.problem_id, "path": record.path}
            rows.append(row)
        drawn[source.name], available[source.name] = len(indices), len(pool)
        skipped[source.name] = checked.bad
    if config.shuffle:
        random.Random(config.seed).shuffle(rows)
    return MixResult(records=rows, drawn=drawn, available=available, skipped=skipped)
