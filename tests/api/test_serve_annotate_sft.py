"""The three commands chained as a researcher would: `videor1 serve` a teacher, `videor1 annotate`
training records through it, `videor1 sft` on the annotated file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from api_support import PIXELS, serve_command
from rl_support import supervise

from videor1.annotate import AnnotateConfig
from videor1.data.loading import load_records, resolve_media
from videor1.data.records import CotRecord, Record
from videor1.rewards import accuracy_reward, format_reward

pytestmark = pytest.mark.slow


def videor1(*args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "videor1.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return done


def test_serve_then_annotate_then_sft(api_root, tmp_path):
    teacher = supervise(api_root / "tiny", tmp_path / "teacher", api_root / "synth" / "cot_train.json",
                        steps=160)
    data = api_root / "synth" / "rl_train.json"
    out = tmp_path / "annotated" / "cot.json"
    with serve_command(teacher, api_root / "synth", tmp_path / "serve.log") as url:
        videor1("annotate", "--data", data, "--endpoint", url, "--out", out, "--frames", 8, "--max-pixels",
                PIXELS, "--greedy", "--max-new-tokens", 96, "--min-think-words", 3, "--batch-size", 4,
                "--concurrency", 2, "--no-progress",
                "--allow-outside-media-root")  # out is not beside the media: say so

    report = json.loads(out.with_name("cot.report.json").read_text())
    saved = AnnotateConfig.model_validate(yaml.safe_load(out.with_name("cot.config.yaml").read_text()))
    assert saved.endpoint == url and saved.min_think_words == 3  # the resolved config, beside the output
    records = {r.problem_id: r for r in load_records(data, kind=Record).records}
    kept = load_records(out, kind=CotRecord, strict=True, allow_outside_media_root=True).records
    assert kept, report  # sft below needs some; which ones depends on the teacher, checked rule by rule below
    journal = [json.loads(line) for line in out.with_name("cot.journal.jsonl").read_text().splitlines()]
    assert sorted(row["id"] for row in journal) == sorted(map(str, records))  # every record decided once
    for record in kept:  # each kept record is what the rules say it should be
        source = records[record.problem_id]
        assert record.solution == source.solution and record.problem == source.problem
        assert resolve_media(record, out.parent).is_file()
        output = next(row["output"] for row in journal if row["id"] == str(record.problem_id))
        assert format_reward(output) == 1.0
        assert accuracy_reward(output, source.solution, source.problem_type, source.options) >= 0.5
        assert record.process in output

    videor1("sft", f"model.path={api_root / 'tiny'}", f"data.train_file={out}", "model.dtype=float32",
            "media.nframes=8", f"media.video_min_pixels={PIXELS}", f"media.video_max_pixels={PIXELS}",
            "run.max_steps=3", "run.prompts_per_device=2", "run.save_every=3", "run.tensorboard=false",
            f"run.output_dir={tmp_path / 'sft'}", "data.allow_outside_media_root=true")
    metrics = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "train/loss" in m] == [1, 2, 3]
    assert (tmp_path / "sft" / "checkpoint-3" / "hf" / "config.json").is_file()
