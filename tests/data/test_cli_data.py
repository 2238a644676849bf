"""`videor1 data validate | stats | mix` and `videor1 prompt` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from videor1.cli import app
from videor1.data import load_records, resolve_media

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"


def test_help_lists_the_subcommands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "prompt"):
        assert command in result.output
    data_help = runner.invoke(app, ["data", "--help"]).output
    for command in ("validate", "stats", "mix"):
        assert command in data_help


def test_validate_reports_each_bad_record_and_fails(mixed_file: Path, tmp_path: Path):
    report = tmp_path / "bad.jsonl"
    result = runner.invoke(app, ["data", "validate", str(mixed_file), "--report", str(report)])
    assert result.exit_code == 1, result.output
    assert "synthetic-video" in result.output and "synthetic-image" in result.output  # the summary table
    assert "5 of 8 records are bad" in result.output
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    reasons = {row["problem_id"]: " ".join(row["reasons"]) for row in rows}
    assert sorted(reasons) == [3, 4, 5, 6, 7]
    assert "not one of the option letters" in reasons[3]
    assert "media file not found" in reasons[4] and "missing.png" in reasons[4]
    assert "problem_type" in reasons[5]
    assert "solution" in reasons[6]
    assert "not a number" in reasons[7]
    assert all(row["record"]["problem_id"] == row["problem_id"] for row in rows)  # the record itself is kept


def test_validate_allow_bad_and_media_root(mixed_file: Path, tmp_path: Path):
    allowed = runner.invoke(app, ["data", "validate", str(mixed_file), "--allow-bad", "--report",
                                  str(tmp_path / "r")])
    assert allowed.exit_code == 0
    # against another media root every media file is missing
    empty_root = tmp_path / "empty"
    empty_root.mkdir()
    moved = runner.invoke(app, ["data", "validate", str(mixed_file), "--media-root", str(empty_root),
                                "--report", str(tmp_path / "r2")])
    assert moved.exit_code == 1 and "8 of 8 records are bad" in moved.output


def test_validate_good_files_and_unreadable_ones(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default report goes to the working directory
    for name in ("train.json", "cot.json"):
        result = runner.invoke(app, ["data", "validate", str(EXAMPLES / name)])
        assert result.exit_code == 0, result.output
        assert "all 6 records are valid" in result.output
    assert "(cot records" in runner.invoke(app, ["data", "validate", str(EXAMPLES / "cot.json")]).output
    (tmp_path / "broken.json").write_text("{")
    result = runner.invoke(app, ["data", "validate", str(tmp_path / "broken.json")])
    assert result.exit_code == 2 and "not valid JSON" in result.output


def test_stats_table_and_chart(mixed_file: Path, tmp_path: Path):
    png = tmp_path / "stats.png"
    result = runner.invoke(app, ["data", "stats", str(mixed_file), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "8 records" in result.output
    assert "multiple choice" in result.output and "50.0%" in result.output  # 4 of 8 are videos
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _mix(tmp_path: Path, config: str, out: str = "mix.json"):
    path = tmp_path / "mix.yaml"
    path.write_text(config)
    return runner.invoke(app, ["data", "mix", "--config", str(path), "--out", str(tmp_path / "out" / out)])


MIX = f"""
seed: {{seed}}
total: 10
allow_outside_media_root: true  # examples/mini's media, outside the output's directory
sources:
  - {{{{name: video, path: {EXAMPLES / 'train.json'}, ratio: 0.6, replace: true,
      where: {{{{data_type: video}}}}}}}}
  - {{{{name: image, path: {EXAMPLES / 'cot.json'}, count: 2, where: {{{{data_type: image}}}}}}}}
"""


def test_mix_is_deterministic_keeps_provenance_and_media_resolve(tmp_path: Path):
    first = _mix(tmp_path, MIX.format(seed=0), "a.json")
    assert first.exit_code == 0, first.output
    again = _mix(tmp_path, MIX.format(seed=0), "b.json")
    other = _mix(tmp_path, MIX.format(seed=1), "c.json")
    assert again.exit_code == 0 and other.exit_code == 0
    a, b, c = (json.loads((tmp_path / "out" / n).read_text()) for n in ("a.json", "b.json", "c.json"))
    assert a == b and a != c
    assert len(a) == 8
    sources = [row["provenance"]["source"] for row in a]
    assert sources.count("video") == 6 and sources.count("image") == 2
    assert all(row["data_type"] == row["provenance"]["source"] for row in a)
    # 4 videos drawn 6 times: every video once before any repeats
    video_ids = sorted(row["provenance"]["problem_id"] for row in a if row["data_type"] == "video")
    assert set(video_ids) == {1, 2, 3, 4} and len(video_ids) == 6
    # paths were rewritten relative to the output directory: the media still resolve
    loaded = load_records(tmp_path / "out" / "a.json", allow_outside_media_root=True)
    assert not loaded.bad
    assert all(resolve_media(r, loaded.media_root).is_file() for r in loaded.records)


def test_mix_config_errors(tmp_path: Path):
    too_many = f"sources:\n  - {{name: v, path: {EXAMPLES / 'train.json'}, count: 50}}\n"
    result = _mix(tmp_path, too_many)
    assert result.exit_code == 2 and "has 6 good records, 50 requested" in result.output
    both = f"sources:\n  - {{name: v, path: {EXAMPLES / 'train.json'}, count: 5, ratio: 0.5}}\n"
    assert "exactly one of `count` or `ratio`" in _mix(tmp_path, both).output
    no_total = f"sources:\n  - {{name: v, path: {EXAMPLES / 'train.json'}, ratio: 0.5}}\n"
    assert "need `total`" in _mix(tmp_path, no_total).output


@pytest.mark.parametrize("template", ["video-r1", "plain"])
def test_prompt_command(template):
    result = runner.invoke(app, ["prompt", str(EXAMPLES / "train.json"), "--template", template])
    assert result.exit_code == 0, result.output
    assert "Which direction does the square move?" in result.output and "B. right" in result.output
    assert ("<think>" in result.output) == (template == "video-r1")


def test_validate_detects_eval_files_and_always_writes_its_report(tmp_path: Path):
    rows = json.loads((EXAMPLES / "train.json").read_text())
    for row in rows:
        row["path"] = str(EXAMPLES / row["path"])
        del row["data_source"]
    (tmp_path / "bench.json").write_text(json.dumps(rows))
    report = tmp_path / "bench.bad.jsonl"
    report.write_text("stale\n")
    result = runner.invoke(app, ["data", "validate", str(tmp_path / "bench.json"), "--report", str(report),
                                 "--media-root", str(EXAMPLES)])  # absolute paths inside the media root
    assert result.exit_code == 0, result.output
    assert "(eval records" in result.output and report.read_text() == ""
    assert f"empty report written to {report}" in result.output
    shown = runner.invoke(app, ["prompt", str(tmp_path / "bench.json"), "--template", "video-r1-eval"])
    assert shown.exit_code == 0 and "<think> and </think>" in shown.output


def test_mix_skips_records_validate_rejects_and_filters_on_any_value(tmp_path: Path, mixed_file: Path):
    config = f"""
seed: 3
allow_outside_media_root: true
sources:
  - {{name: good, path: {mixed_file}, count: 3}}
  - {{name: temporal, path: {EXAMPLES / 'train.json'}, count: 3, where: {{temporal: true}}}}
"""
    result = _mix(tmp_path, config)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "out" / "mix.json").read_text())
    good = [row for row in rows if row["provenance"]["source"] == "good"]
    assert sorted(row["problem_id"] for row in good) == [1, 2, 8]  # the three records validate accepts
    assert all(row["temporal"] is True for row in rows if row["provenance"]["source"] == "temporal")
    assert "5 bad record(s) skipped; first: record #2 (problem_id=3)" in result.output


def test_mix_relocates_paths_for_another_media_root(tmp_path: Path):
    media = tmp_path / "elsewhere"
    (media / "videos").mkdir(parents=True)
    (media / "videos" / "right_red.mp4").write_bytes((EXAMPLES / "videos" / "right_red.mp4").read_bytes())
    records = [json.loads((EXAMPLES / "train.json").read_text())[0]]
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "a.json").write_text(json.dumps(records))
    config = tmp_path / "mix.yaml"
    config.write_text("sources:\n  - {name: a, path: lists/a.json, media_root: elsewhere, count: 1}\n")
    out_root = tmp_path  # holds the media: readers of the mix accept them
    result = runner.invoke(app, ["data", "mix", "--config", str(config), "--out",
                                 str(tmp_path / "o" / "m.json"), "--media-root", str(out_root)])
    assert result.exit_code == 0, result.output
    loaded = load_records(tmp_path / "o" / "m.json", media_root=out_root)
    assert loaded.records[0].path == "elsewhere/videos/right_red.mp4"
    assert resolve_media(loaded.records[0], out_root) == (media / "videos" / "right_red.mp4").resolve()
    # an output media root that does not hold the media: refused, saying what to do
    refused = runner.invoke(app, ["data", "mix", "--config", str(config), "--out",
                                  str(tmp_path / "o" / "n.json"), "--media-root", str(tmp_path / "lists")])
    assert refused.exit_code == 2 and "outside the output's media root" in refused.output
    assert "--media-root a directory holding every source's media" in refused.output
    assert not (tmp_path / "o" / "n.json").exists()


def test_synth_then_validate_from_the_cli(tmp_path: Path):
    out = tmp_path / "synth"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--n", "40", "--seed", "3"])
    assert result.exit_code == 0, result.output
    for name in ("rl_train", "cot_train", "eval", "describe"):
        checked = runner.invoke(app, ["data", "validate", str(out / f"{name}.json"), "--report",
                                      str(tmp_path / "r")])
        assert checked.exit_code == 0, checked.output
        assert "records are valid" in checked.output
    bad_config = tmp_path / "synth.yaml"
    bad_config.write_text("instants: 1\n")
    failed = runner.invoke(app, ["data", "synth", "--out", str(out), "--n", "4", "--config", str(bad_config)])
    assert failed.exit_code == 2 and "instants" in failed.output
