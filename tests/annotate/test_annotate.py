"""`videor1 annotate`: the filter's one reason per record, failures that stay their own, the journal's
resume (torn line, retry of failures, settings), the endpoint teacher over HTTP, and, slow, a real
tiny teacher killed with SIGKILL mid-run whose resumed output equals an uninterrupted run's and
trains `videor1 sft`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from factories import image_record, video_record
from rl_support import MEDIA, supervise

from videor1.annotate import AnnotateConfig, annotate, make_teacher
from videor1.data import CotRecord, load_records
from videor1.data.loading import resolve_media
from videor1.data.synth import synthesize
from videor1.eval import SettingsMismatch
from videor1.eval.generate import Generation
from videor1.models.inputs import Prompt
from videor1.models.tiny import build_tiny_from_records
from videor1.rewards import accuracy_reward, format_reward

WORDS = " ".join(["wait"] * 25)  # 25 words of reasoning: within the default bounds [20, 500]


def cot(think: str, answer: str) -> str:
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


class ScriptedTeacher:
    """A Generator answering each prompt with the response scripted for its record (found by the
    "[id]" its question starts with); raises for the ids in `fail`, failing the whole batch."""

    def __init__(self, responses: dict[str, str], fail: set[str] = frozenset()):
        self.responses, self.fail, self.batches = responses, fail, []

    def __call__(self, prompts: list[Prompt], seed: int) -> list[Generation]:
        ids = [re.match(r"\[(\w+)\]", p.text).group(1) for p in prompts]
        self.batches.append(ids)
        if self.fail & set(ids):
            raise RuntimeError(f"teacher refuses {sorted(self.fail & set(ids))}")
        return [Generation(self.responses[i], len(self.responses[i].split())) for i in ids]


def _records() -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """Records (media under the `media_dir` fixture), scripted responses, and each record's expected
    outcome."""
    free = dict(problem_type="free-form", options=[], solution="<answer>it moves right</answer>")
    rows = [  # (record, response, outcome)
        (video_record("kept", task="direction"), cot(WORDS, "B"), "kept"),
        (image_record("noformat"), "The answer is 3.", "bad_format"),
        (video_record("twoanswers"), cot(WORDS, "B") + "<answer>B</answer>", "bad_format"),
        (video_record("wrong"), cot(WORDS, "C"), "wrong_answer"),
        (image_record("short"), cot("three circles", "3"), "too_short"),
        (video_record("long", **free), cot(" ".join(["hmm"] * 501), "it moves right"), "too_long"),
        (image_record("nomedia", path="images/missing.png"), cot(WORDS, "3"), "media_error"),
        (image_record("refused"), cot(WORDS, "3"), "teacher_error"),
        # free-form is continuous: mean ROUGE of "it moves left" against "it moves right" is 0.61 >= 0.5
        (video_record("close", **free), cot(WORDS, "it moves left"), "kept"),
        (image_record("numeric"), cot(WORDS, "3.0"), "kept"),
    ]
    records = [{**r, "problem": f"[{r['problem_id']}] {r['problem']}"} for r, _, _ in rows]
    return (records, {r["problem_id"]: response for r, response, _ in rows},
            {r["problem_id"]: outcome for r, _, outcome in rows})


@pytest.fixture
def train_file(media_dir: Path) -> Path:
    path = media_dir / "train.json"
    path.write_text(json.dumps(_records()[0]), encoding="utf-8")
    return path


def config(train_file: Path, out: Path, **overrides) -> AnnotateConfig:
    values = dict(data=train_file, out=out, endpoint="http://never-called", frames=4, batch_size=4,
                  min_pixels=3136, max_pixels=3136)
    return AnnotateConfig(**{**values, **overrides})


def journal_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_record_gets_one_reason_and_kept_records_are_cot_records(train_file, tmp_path):
    records, responses, expected = _records()
    teacher = ScriptedTeacher(responses, fail={"refused"})
    result = annotate(config(train_file, tmp_path / "cot.json"), teacher, show_progress=False)

    rows = {row["id"]: row for row in journal_lines(result.paths.journal)}
    assert {i: row["reason"] or "kept" for i, row in rows.items()} == expected
    assert len(journal_lines(result.paths.journal)) == len(records)
    # the batch holding "refused" failed and was retried record by record: only "refused" failed
    assert ["refused"] in teacher.batches and "nomedia" not in sum(teacher.batches, [])
    assert "teacher refuses" in rows["refused"]["detail"] and "missing.png" in rows["nomedia"]["detail"]
    assert rows["close"]["score"] == pytest.approx(accuracy_reward(responses["close"],
                                                                   "<answer>it moves right"
                                                                   "</answer>", "free-form"))
    assert (rows["short"]["think_words"], rows["long"]["think_words"]) == (2, 501)

    kept = load_records(result.paths.out, kind=CotRecord, strict=True).records
    assert [r.problem_id for r in kept] == ["kept", "close", "numeric"]  # input order
    by_id = {r["problem_id"]: r for r in records}
    for record in kept:
        assert record.process == f"<think>{WORDS}</think>"
        assert record.solution == by_id[record.problem_id]["solution"]  # the ground truth, not "3.0"
        assert record.problem == by_id[record.problem_id]["problem"]
    assert kept[0].task == "direction"  # extra fields kept

    report = result.report
    assert report.kept == 3 and report.rejected == {"media_error": 1, "teacher_error": 1, "bad_format": 2,
                                                    "wrong_answer": 1, "too_short": 1, "too_long": 1}
    assert report.by_data_type["image"]["kept"] == 1 and report.by_problem_type["free-form"]["too_long"] == 1
    assert [e.id for e in report.examples["bad_format"]] == ["noformat", "twoanswers"]
    markdown = result.paths.markdown.read_text()
    assert "| too_long | 1 (10%) |" in markdown and "### teacher_error" in markdown
    assert json.loads(result.paths.report.read_text())["kept"] == 3


def test_threshold_applies_to_continuous_rewards(train_file, tmp_path):
    _, responses, _ = _records()
    result = annotate(config(train_file, tmp_path / "cot.jsonl", threshold=0.7),
                      ScriptedTeacher(responses, fail={"refused"}), show_progress=False)
    rows = {row["id"]: row for row in journal_lines(result.paths.journal)}
    assert rows["close"]["reason"] == "wrong_answer" and rows["kept"]["reason"] is None
    assert [r["problem_id"] for r in map(json.loads, (tmp_path / "cot.jsonl").read_text().splitlines())] == [
        "kept", "numeric"]


def test_a_rerun_decides_nothing_again_unless_failures_are_retried(train_file, media_dir, tmp_path):
    _, responses, _ = _records()
    first = annotate(config(train_file, tmp_path / "cot.json"), ScriptedTeacher(responses, fail={"refused"}),
                     show_progress=False)
    before = (tmp_path / "cot.json").read_bytes()
    idle = ScriptedTeacher(responses, fail=set(responses))
    again = annotate(config(train_file, tmp_path / "cot.json"), idle, show_progress=False)
    assert idle.batches == [] and (tmp_path / "cot.json").read_bytes() == before
    assert again.report.rejected == first.report.rejected

    shutil.copy(media_dir / "images" / "circles.png",
                media_dir / "images" / "missing.png")  # the media is back
    retry = ScriptedTeacher(responses)
    result = annotate(config(train_file, tmp_path / "cot.json", retry_failed=True), retry,
                      show_progress=False)
    assert retry.batches == [["short", "long", "nomedia", "refused"]]  # the failures' batch, whole
    lines = journal_lines(result.paths.journal)
    assert len(lines) == 10 + 2  # the two failures, appended again; the last line of an id counts
    assert result.report.kept == 5 and result.report.rejected["teacher_error"] == 0
    ids = [r.problem_id for r in load_records(tmp_path / "cot.json", kind=CotRecord, strict=True).records]
    assert ids == ["kept", "nomedia", "refused", "close", "numeric"]


def test_a_torn_last_journal_line_is_redone_with_its_whole_batch(train_file, tmp_path):
    _, responses, _ = _records()
    full = annotate(config(train_file, tmp_path / "full.json"), ScriptedTeacher(responses),
                    show_progress=False)
    cut = annotate(config(train_file, tmp_path / "cut.json"), ScriptedTeacher(responses), show_progress=False)
    data = cut.paths.journal.read_bytes()
    lines = data.splitlines(keepends=True)
    cut.paths.journal.write_bytes(b"".join(lines[:5]) + lines[5][:40])  # a kill in the middle of line 6
    teacher = ScriptedTeacher(responses)
    annotate(config(train_file, tmp_path / "cut.json"), teacher, show_progress=False)
    # line 6 is record 6 ("long": lines in input order, batches of 4): its batch (records 5-8, "nomedia" never
    # reaches the teacher) is generated again whole, then the last batch
    assert teacher.batches == [["short", "long", "refused"], ["close", "numeric"]]
    assert cut.paths.journal.read_bytes().startswith(b"".join(lines[:5]))
    assert [row["id"] for row in journal_lines(cut.paths.journal)] == [row["id"] for row in
                                                                        journal_lines(full.paths.journal)]
    assert (tmp_path / "cut.json").read_text() == (tmp_path / "full.json").read_text()


def test_duplicate_ids_and_changed_settings_are_refused(train_file, tmp_path):
    records, responses, _ = _records()
    teacher = ScriptedTeacher(responses)
    dup = train_file.with_name("dup.json")
    dup.write_text(json.dumps(records + [{**records[3], "problem": "another question"}]))
    with pytest.raises(ValueError, match=r"dup\.json: 1 problem_id\(s\) occur more than once \(wrong\)"):
        annotate(config(dup, tmp_path / "dup.json"), teacher, show_progress=False)
    assert teacher.batches == [] and not (tmp_path / "dup.journal.jsonl").exists()

    annotate(config(train_file, tmp_path / "cot.json", limit=2), teacher, show_progress=False)
    with pytest.raises(SettingsMismatch, match="threshold"):
        annotate(config(train_file, tmp_path / "cot.json", threshold=0.9), teacher, show_progress=False)
    with pytest.raises(ValueError, match="exactly one teacher"):
        config(train_file, tmp_path / "cot.json", teacher=tmp_path)
    with pytest.raises(ValueError, match="min_think_words"):
        config(train_file, tmp_path / "cot.json", min_think_words=50, max_think_words=40)


def test_the_endpoint_teacher_sends_each_prompt_with_the_api_key(train_file, tmp_path, monkeypatch):
    """The endpoint path end to end but for the network: `make_teacher`'s client over a mock transport."""
    _, responses, expected = _records()
    monkeypatch.setenv("VIDEOR1_API_KEY", "secret")
    seen = []

    def server(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer secret"
        body = json.loads(request.content)
        text = next(part["text"] for part in body["messages"][-1]["content"] if part["type"] == "text")
        sample_id = re.match(r"\[(\w+)\]", text).group(1)
        seen.append(sample_id)
        if sample_id == "refused":
            return httpx.Response(400, json={"error": {"message": "prompt too long"}})
        return httpx.Response(200, json={"choices": [{"message": {"content": responses[sample_id]},
                                                      "finish_reason": "stop"}],
                                         "usage": {"completion_tokens": 7}})

    cfg = config(train_file, tmp_path / "cot.json", endpoint="http://teacher", endpoint_model="m")
    teacher = make_teacher(cfg)
    client = teacher.engine.client  # the endpoint engine's
    client.http = httpx.Client(base_url=client.base_url, headers=client.http.headers,
                               transport=httpx.MockTransport(server))
    result = annotate(cfg, teacher, show_progress=False)
    rows = {row["id"]: row for row in journal_lines(result.paths.journal)}
    assert {i: row["reason"] or "kept" for i, row in rows.items()} == expected
    assert "prompt too long" in rows["refused"]["detail"] and rows["kept"]["tokens"] == 7
    assert seen.count("refused") == 2  # in its batch, then alone; a 400 is not retried by the client
    assert result.report.kept == 3


# ---------------------------------------------------------------- a real tiny teacher, killed and resumed

@pytest.fixture(scope="module")
def teacher_workspace(tmp_path_factory) -> Path:
    """synth/ (16 CoT records, one with its video missing) and model/: a tiny Qwen2.5-VL briefly supervised
    on them, so that some answers are right and well formed and others are not."""
    root = tmp_path_factory.mktemp("annotate")
    synthesize(root / "synth", n=16, seed=0)
    build_tiny_from_records(root / "tiny", [root / "synth" / "cot_train.json"])
    supervise(root / "tiny", root / "model", root / "synth" / "cot_train.json", steps=60)
    records = json.loads((root / "synth" / "cot_train.json").read_text())
    video = next(r for r in records if r["data_type"] == "video")
    video["path"] = "videos/missing.mp4"
    (root / "synth" / "train.json").write_text(json.dumps(records))
    return root


def _cli(root: Path, out: Path) -> subprocess.Popen:
    args = ["--data", root / "synth" / "train.json", "--teacher", root / "model", "--out", out, "--frames", 8,
            "--max-pixels", 7056, "--batch-size", 2, "--max-new-tokens", 96, "--min-think-words", 5,
            "--max-think-words", 30, "--no-progress",
            "--allow-outside-media-root"]  # out is not beside the media
    return subprocess.Popen([sys.executable, "-m", "videor1.cli", "annotate", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _kill_when(proc: subprocess.Popen, journal: Path, lines: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (journal.exists() and journal.read_bytes().count(b"\n") >= lines):
        assert proc.poll() is None, ("the run ended before it could be killed: "
                                     f"{proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"{journal} did not reach {lines} lines in {timeout} s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_output_which_trains_sft(teacher_workspace, tmp_path):
    root = teacher_workspace
    full = _cli(root, tmp_path / "full" / "cot.json")
    assert full.wait(timeout=300) == 0, full.stderr.read().decode()[-2000:]

    journal = tmp_path / "cut" / "cot.journal.jsonl"
    _kill_when(_cli(root, tmp_path / "cut" / "cot.json"), journal, lines=3)
    assert 3 <= journal.read_bytes().count(b"\n") < 16 and not (tmp_path / "cut" / "cot.json").exists()
    resumed = _cli(root, tmp_path / "cut" / "cot.json")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-2000:]

    assert (tmp_path / "cut" / "cot.json").read_text() == (tmp_path / "full" / "cot.json").read_text()
    rows = journal_lines(journal)
    assert sorted(row["id"] for row in rows) == sorted(row["id"] for row in journal_lines(
        tmp_path / "full" / "cot.journal.jsonl"))  # every record once: none lost, none twice
    assert len({row["id"] for row in rows}) == len(rows) == 16

    # each decision, checked here from the output through the rewards
    records = {r["problem_id"]: r for r in json.loads((root / "synth" / "train.json").read_text())}
    reasons = {row["id"]: row["reason"] for row in rows}
    assert reasons[next(i for i, r in records.items() if r["path"] == "videos/missing.mp4")] == "media_error"
    for row in rows:
        if row["reason"] in ("media_error", "teacher_error"):
            continue
        rec = records[row["id"]]
        formatted = format_reward(row["output"]) == 1.0
        right = accuracy_reward(row["output"], rec["solution"], rec["problem_type"], rec["options"]) >= 0.5
        words = len(row["output"].split("<think>")[-1].split("</think>")[0].split()) if formatted else None
        expected = ("bad_format" if not formatted else "wrong_answer" if not right
                    else "too_short" if words < 5 else "too_long" if words > 30 else None)
        assert row["reason"] == expected, row
    assert None in reasons.values() and {"bad_format", "wrong_answer"} & set(reasons.values())

    kept = load_records(tmp_path / "cut" / "cot.json", kind=CotRecord, strict=True,
                        allow_outside_media_root=True).records
    assert all(resolve_media(k, tmp_path / "cut").is_file() for k in kept)  # paths relocated to the output
    assert len(kept) == list(reasons.values()).count(None)
    assert all(k.solution == records[k.problem_id]["solution"] for k in kept)

    from videor1.train.sft import load_sft_config, train

    overrides = {"model.path": root / "tiny", "model.dtype": "float32",
                 "data.train_file": tmp_path / "cut" / "cot.json", "data.allow_outside_media_root": True,
                 "run.max_steps": 2, "run.prompts_per_device": 2, "run.output_dir": tmp_path / "sft",
                 "run.tensorboard": False, "run.save_every": 2}
    train(load_sft_config(None, MEDIA + [f"{k}={v}" for k, v in overrides.items()]), progress=False)
    assert (tmp_path / "sft" / "checkpoint-2" / "hf" / "config.json").exists()
