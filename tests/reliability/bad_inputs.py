"""The bad-input corpus and its probes: each kind of bad input fed to every `videor1` command that reads
it, as a real command line (typer's CliRunner, in process), with a verdict per (kind, command).

Verdicts:
- clean: the command said what was wrong, naming the file (file kinds) or the record (record kinds),
  with the right exit code, no traceback, and went on with the good records;
- crash: a traceback, or an exit code that is not the documented one;
- accepted: the bad input was used as if it were good (a record scored, trained on or written out; a
  file outside the media root opened; exit 0 on a file without records) — substitution included;
- unclear: refused, but without naming the file or the record;
- n/a: the command does not read what is bad (e.g. `stats` never opens media).

Importable on its own (`python tests/reliability/bad_inputs.py`) to print the table; the tests in
test_bad_input.py assert that every cell is clean or n/a.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image
from typer.testing import CliRunner

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"
PIXELS = 56 * 56
OPTIONS = ["A. left", "B. right", "C. up", "D. down"]

# Kinds that make a whole file unreadable; each is one file, fed to every command alone.
FILE_KINDS = ("missing_file", "not_utf8", "not_json", "dict_not_list", "empty_list", "list_of_numbers",
              "not_jsonl")
# Kinds of one bad record among good ones: all of them share one file per command.
SCHEMA_KINDS = ("missing_field", "empty_question", "wrong_type", "unknown_problem_type", "unknown_data_type",
                "answer_not_in_options", "unlettered_options", "no_answer_tags", "numerical_not_number",
                "nan_answer", "inf_answer", "nan_segment", "bad_jsonl_line")
PATH_KINDS = ("path_traversal", "absolute_outside", "symlink_outside")
MEDIA_KINDS = ("media_missing", "media_empty", "truncated_video", "not_a_video", "one_frame_video",
               "image_as_video", "video_as_image", "huge_image", "elongated_video", "audio_only")
RECORD_KINDS = SCHEMA_KINDS + PATH_KINDS + MEDIA_KINDS
EVAL_KINDS = ("duplicate_ids",)
IMPORT_KINDS = ("import_wrong_shape", "import_labels_like_r_l")
KINDS = FILE_KINDS + RECORD_KINDS + EVAL_KINDS + IMPORT_KINDS
COMMANDS = ("validate", "stats", "prompt", "mix", "eval", "rl", "sft", "annotate", "import-bench", "infer")
GOOD_IDS = ("good_video_1", "good_image_1", "good_video_2", "good_image_2")

runner = CliRunner()


# ---------------------------------------------------------------- media files

def _encode(path: Path, frames: int, width: int = 56, height: int = 56, fps: int = 4,
            container_options: dict | None = None, noise: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qp": "0"}
        rng = np.random.default_rng(0)
        for i in range(frames):
            pixels = (rng.integers(0, 256, (height, width, 3), np.uint8) if noise  # data outweighs the index
                      else np.full((height, width, 3), (15 * i) % 256, np.uint8))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for k in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, k * 1024, Fraction(1, 16000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header announces width x height (a decompression bomb) with one tiny data chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def write_media(root: Path, outside: Path) -> None:
    """The good media, one bad file per media kind under `root`, and files outside it."""
    _encode(root / "videos" / "good.mp4", frames=8)
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((56, 56, 3), 200, np.uint8)).save(root / "images" / "good.png")
    (root / "videos" / "empty.mp4").write_bytes(b"")
    full = _encode(root / "videos" / "faststart.mp4", frames=40, container_options={"movflags": "faststart"},
                   noise=True)
    data = full.read_bytes()  # index first: the cut file opens, announces 40 frames, decodes its first
    (root / "videos" / "truncated.mp4").write_bytes(data[:int(len(data) * 0.4)])
    full.unlink()
    (root / "videos" / "text.mp4").write_text("this is not a video\n" * 50)
    _encode(root / "videos" / "one_frame.mp4", frames=1)
    _encode(root / "videos" / "elongated.mp4", frames=4, width=16, height=3400)  # aspect ratio 212 > 200
    _audio_only(root / "videos" / "speech.m4a")
    _png_header_only(root / "images" / "bomb.png", 40000, 40000)
    outside.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((56, 56, 3), 90, np.uint8)).save(outside / "secret.png")
    (root / "link.png").symlink_to(outside / "secret.png")


# ---------------------------------------------------------------- records

def _record(pid: str, data_type: str = "video", **overrides) -> dict:
    base = {"problem_id": pid, "problem": f"[{pid}] Which way does it move?", "data_type": data_type,
            "problem_type": "multiple choice", "options": OPTIONS, "solution": "<answer>B</answer>",
            "path": "videos/good.mp4" if data_type == "video" else "images/good.png", "data_source": "corpus",
            "process": "<think>It starts on the left and ends on the right.</think>"}
    return {**base, **overrides}


def good_records() -> list[dict]:
    return [_record("good_video_1"), _record("good_image_1", "image"),
            _record("good_video_2", problem_type="numerical", options=[], solution="<answer>3</answer>"),
            _record("good_image_2", "image", problem_type="free-form", options=[],
                    solution="<answer>a grey square</answer>")]


def bad_record(kind: str, outside: Path) -> dict | None:
    """The one record of `kind` (None: `bad_jsonl_line`, which is a line, not a record)."""
    numerical = {"problem_type": "numerical", "options": []}
    records = {
        "missing_field": {k: v for k, v in _record(kind).items() if k != "problem"},
        "empty_question": _record(kind, problem=""),
        "wrong_type": _record(kind, options="A. left B. right"),
        "unknown_problem_type": _record(kind, problem_type="yes/no"),
        "unknown_data_type": _record(kind, data_type="audio"),
        "answer_not_in_options": _record(kind, solution="<answer>E</answer>"),
        "unlettered_options": _record(kind, options=["left", "right"]),
        "no_answer_tags": _record(kind, solution="B"),
        "numerical_not_number": _record(kind, **numerical, solution="<answer>abc</answer>"),
        "nan_answer": _record(kind, **numerical, solution="<answer>NaN</answer>"),
        "inf_answer": _record(kind, problem_type="regression", options=[], solution="<answer>inf</answer>"),
        "path_traversal": _record(kind, "image", path="../../../../../../../../etc/passwd"),
        "absolute_outside": _record(kind, "image", path=str(outside / "secret.png")),
        "symlink_outside": _record(kind, "image", path="link.png"),
        "media_missing": _record(kind, path="videos/missing.mp4"),
        "media_empty": _record(kind, path="videos/empty.mp4"),
        "truncated_video": _record(kind, path="videos/truncated.mp4"),
        "not_a_video": _record(kind, path="videos/text.mp4"),
        "one_frame_video": _record(kind, path="videos/one_frame.mp4"),
        "image_as_video": _record(kind, path="images/good.png"),
        "video_as_image": _record(kind, "image", path="videos/good.mp4"),
        "huge_image": _record(kind, "image", path="images/bomb.png"),
        "elongated_video": _record(kind, path="videos/elongated.mp4"),
        "audio_only": _record(kind, path="videos/speech.m4a"),
        "nan_segment": _record(kind, start=math.nan, end=math.inf),
    }
    return records.get(kind)


def write_file_kind(path: Path, kind: str) -> Path:
    """A data file that is bad as a whole."""
    contents = {"not_utf8": b'[{"problem": "caf\xe9"}]', "not_json": b'[{"problem_id": 1,',
                "missing_file": None,
                "dict_not_list": json.dumps({"records": good_records()}).encode(), "empty_list": b"[]",
                "list_of_numbers": b"[1, 2, 3]", "not_jsonl": b"{oops\n[1,\n"}
    if kind == "not_jsonl":
        path = path.with_suffix(".jsonl")
    if contents[kind] is not None:
        path.write_bytes(contents[kind])
    return path


@dataclass
class Corpus:
    root: Path  # the media root, where the record files live
    outside: Path
    model: Path
    records: dict[str, Path] = field(default_factory=dict)  # flavour -> the file of good and bad records
    files: dict[str, Path] = field(default_factory=dict)  # file kind -> its file
    indices: dict[str, int] = field(default_factory=dict)  # record kind -> position in the records file


def build_corpus(base: Path) -> Corpus:
    """Media, record files (train: JSONL with one bad line; cot; eval) and a tiny model, under `base`."""
    from videor1.models.tiny import build_tiny_from_records

    root, outside = base / "data", base / "outside"
    write_media(root, outside)
    corpus = Corpus(root, outside, base / "tiny")
    rows: list[dict | str] = []
    good = good_records()
    for k, kind in enumerate(RECORD_KINDS):  # good and bad records interleaved
        if k % 6 == 0 and good:
            rows.append(good.pop(0))
        corpus.indices[kind] = len(rows)
        rows.append(bad_record(kind, outside) or '{"problem_id": "bad_jsonl_line", "oops')
    rows.extend(good)
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    corpus.records["train"] = root / "records.jsonl"
    corpus.records["train"].write_text("\n".join(lines) + "\n")
    for name in FILE_KINDS:
        corpus.files[name] = write_file_kind(root / f"{name}.json", name)
    build_tiny_from_records(corpus.model, [EXAMPLES / "cot.json"])
    return corpus


# ---------------------------------------------------------------- running commands

class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class Run:
    code: int
    output: str  # stdout, stderr and the log lines
    crashed: bool

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith("error:")]


def invoke(*args) -> Run:
    from videor1.cli import app

    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        result = runner.invoke(app, [str(a) for a in args])
    finally:
        root.removeHandler(collect)
        root.setLevel(level)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    output = result.output + "\n".join(collect.lines)
    if crashed:
        import traceback

        output += "\nTraceback:\n" + "".join(traceback.format_exception(result.exception))
    run = Run(result.exit_code, output, crashed or "Traceback" in output)
    RUNS.append(([str(a) for a in args], run))
    return run


RUNS: list[tuple[list[str], Run]] = []  # every command line run, for a failure's message


def file_verdict(run: Run, path: Path) -> str:
    """A file that cannot be read: exit 2 and one `error:` line naming it."""
    if run.crashed or run.code not in (0, 1, 2):
        return "crash"
    if run.code == 0:
        return "accepted"
    named = [line for line in run.error_lines if str(path) in line]
    return "clean" if run.code == 2 and named else "unclear"


MEDIA = ["media.nframes=4", f"media.video_min_pixels={PIXELS}", f"media.video_max_pixels={PIXELS}",
         f"media.image_min_pixels={PIXELS}", f"media.image_max_pixels={PIXELS}"]


def stage_args(command: str, corpus: Corpus, data: Path, out: Path) -> list[str]:
    """`rl` / `sft` overrides of a one-step run whose micro-batch holds every record of the file."""
    common = [f"model.path={corpus.model}", "model.dtype=float32", f"data.train_file={data}",
              "run.max_steps=1", f"run.prompts_per_device={len(RECORD_KINDS) + 4}", f"run.output_dir={out}",
              "run.save_every=1", "run.tensorboard=false", "data.shuffle=false", *MEDIA]
    if command == "rl":
        return ["rl", *common, "sampling.max_new_tokens=4", "algo.num_generations=2", "algo.num_shuffled=1"]
    return ["sft", *common]


def eval_args(corpus: Corpus, data: Path, out: Path) -> list[str]:
    return ["eval", "--model", corpus.model, "--bench", "generic", "--data", data, "--out", out,
            "--frames", 4, "--max-pixels", PIXELS, "--min-pixels", PIXELS, "--max-new-tokens", 4, "--greedy",
            "--no-progress"]


def annotate_args(corpus: Corpus, data: Path, out: Path) -> list[str]:
    return ["annotate", "--data", data, "--teacher", corpus.model, "--out", out, "--frames", 4,
            "--max-pixels", PIXELS, "--max-new-tokens", 4, "--greedy", "--no-progress",
            "--min-think-words", 1]


def run_file_kind(command: str, kind: str, corpus: Corpus, work: Path) -> str:
    """The verdict of `command` on the file of `kind`."""
    path = corpus.files[kind]
    out = work / f"{command}-{kind}"
    if command == "validate":
        run = invoke("data", "validate", path, "--report", out / "bad.jsonl")
        if kind == "list_of_numbers" and not run.crashed:  # records, each bad: reported one by one
            return "clean" if run.code == 1 and "3 of 3 records are bad" in run.output else "unclear"
    elif command == "stats":
        run = invoke("data", "stats", path)
    elif command == "prompt":
        run = invoke("prompt", path)
    elif command == "mix":
        out.mkdir(parents=True, exist_ok=True)
        (out / "mix.yaml").write_text(f"sources:\n  - {{name: s, path: {path}, count: 1}}\n")
        run = invoke("data", "mix", "--config", out / "mix.yaml", "--out", out / "mixed.json")
    elif command == "eval":
        run = invoke(*eval_args(corpus, path, out))
    elif command in ("rl", "sft"):
        run = invoke(*stage_args(command, corpus, path, out))
    elif command == "annotate":
        run = invoke(*annotate_args(corpus, path, out / "cot.json"))
    elif command == "import-bench":
        run = invoke("data", "import-bench", "--bench", "videomme", "--src", path,
                     "--out", out / "bench.json")
    else:
        return "n/a"
    return file_verdict(run, path)


def label(kind: str) -> str:
    return f"problem_id={kind!r}"


def named(run: Run, kind: str, corpus: Corpus) -> bool:
    """Whether the output names the record of `kind` (by id, or by position / line for a bad line)."""
    if kind == "bad_jsonl_line":
        return f"line {corpus.indices[kind] + 1}: not valid JSON" in run.output
    return label(kind) in run.output or f"'{kind}'" in run.output


def record_verdicts(command: str, corpus: Corpus, work: Path) -> dict[str, str]:
    """The verdict of `command` on each record kind, from one run over the file that holds them all."""
    data = corpus.records["train"]
    out = work / f"{command}-records"
    if command == "stats":
        run = invoke("data", "stats", data)
        if run.crashed:
            return dict.fromkeys(RECORD_KINDS, "crash")
        total = f"{len(RECORD_KINDS) + 4 - 1} records" in run.output  # the bad line is not counted
        line = named(run, "bad_jsonl_line", corpus)
        return {k: ("clean" if total and line else "unclear") if k == "bad_jsonl_line" else "n/a"
                for k in RECORD_KINDS}
    if command == "prompt":
        verdicts = {}
        for kind in RECORD_KINDS:
            run = invoke("prompt", data, "--index", corpus.indices[kind])
            if run.crashed or run.code not in (0, 2):
                verdicts[kind] = "crash"
            elif kind in SCHEMA_KINDS:  # prompt builds the question: a record it cannot read is refused
                verdicts[kind] = ("clean" if named(run, kind, corpus) or f"record #{corpus.indices[kind]}"
                                  in run.output else "unclear") if run.code == 2 else "accepted"
            else:
                verdicts[kind] = "n/a"  # prompt never opens media
        return verdicts
    if command == "validate":
        report = out / "bad.jsonl"
        run = invoke("data", "validate", data, "--report", report)
        if run.crashed or run.code != 1:
            return dict.fromkeys(RECORD_KINDS, "crash")
        rows = [json.loads(line) for line in report.read_text().splitlines()]
        bad_ids = {row["problem_id"] for row in rows} | {f"#{row['index']}" for row in rows}
        good_ok = not bad_ids & set(GOOD_IDS)
        return {k: "clean" if good_ok and (k in bad_ids or f"#{corpus.indices[k]}" in bad_ids) else "accepted"
                for k in RECORD_KINDS}
    if command == "mix":
        out.mkdir(parents=True, exist_ok=True)
        good = len(GOOD_IDS)
        (out / "mix.yaml").write_text(f"seed: 0\nsources:\n  - {{name: s, path: {data}, count: {good}}}\n")
        run = invoke("data", "mix", "--config", out / "mix.yaml", "--out", data.parent / "mixed.json")
        if run.crashed or run.code != 0:
            return dict.fromkeys(RECORD_KINDS, "crash" if run.crashed else "unclear")
        drawn = {row["problem_id"] for row in json.loads((data.parent / "mixed.json").read_text())}
        return {k: "accepted" if k in drawn else "clean" if drawn == set(GOOD_IDS) else "unclear"
                for k in RECORD_KINDS}
    if command == "eval":
        run = invoke(*eval_args(corpus, data, out))
        if run.crashed or run.code != 0:
            return dict.fromkeys(RECORD_KINDS, "crash")
        rows = {r["id"]: r for r in map(json.loads, (out / "generic.ordered.jsonl").read_text().splitlines())}
        summary = json.loads((out / "generic.summary.json").read_text())
        good_ok = all(rows.get(g, {}).get("error") is None and rows.get(g, {}).get("output") is not None
                      for g in GOOD_IDS)
        verdicts = {}
        for kind in RECORD_KINDS:
            row = rows.get(kind)
            if kind in MEDIA_KINDS:  # a failed sample, with its reason: never scored from other media
                clean = row is not None and row["error"] and row["output"] is None
            else:  # a bad record: no row, counted as invalid
                clean = row is None and summary["invalid_records"] == len(SCHEMA_KINDS) + len(PATH_KINDS)
            verdicts[kind] = "clean" if clean and good_ok else "accepted" if row is not None else "unclear"
        return verdicts
    if command in ("rl", "sft"):
        run = invoke(*stage_args(command, corpus, data, out))
        if run.crashed or run.code != 0:
            return dict.fromkeys(RECORD_KINDS, "crash")
        invalid = f"skipped {len(SCHEMA_KINDS) + len(PATH_KINDS)} bad record(s)" in run.output
        verdicts = {}
        for kind in RECORD_KINDS:
            skipped = f"skipping {label(kind)}" in run.output  # its media were opened and failed
            if kind in MEDIA_KINDS:
                verdicts[kind] = "clean" if skipped else "accepted"
            else:
                verdicts[kind] = "accepted" if skipped else "clean" if invalid else "accepted"
        return verdicts
    if command == "annotate":
        run = invoke(*annotate_args(corpus, data, data.parent / "annotated.json"))
        if run.crashed or run.code != 0:
            return dict.fromkeys(RECORD_KINDS, "crash")
        journal = {r["id"]: r for r in map(json.loads, (data.parent / "annotated.journal.jsonl").read_text()
                                           .splitlines())}
        report = json.loads((data.parent / "annotated.report.json").read_text())
        invalid = report.get("invalid_records") == len(SCHEMA_KINDS) + len(PATH_KINDS)
        verdicts = {}
        for kind in RECORD_KINDS:
            row = journal.get(kind)
            if kind in MEDIA_KINDS:
                verdicts[kind] = "clean" if row is not None and row["reason"] == "media_error" else "accepted"
            else:
                verdicts[kind] = "accepted" if row is not None else "clean" if invalid else "unclear"
        return verdicts
    if command == "infer":
        verdicts = {}
        for kind in RECORD_KINDS:
            record = bad_record(kind, corpus.outside)
            if kind not in MEDIA_KINDS:
                verdicts[kind] = "n/a"  # infer takes a file the user names, no record
                continue
            path = corpus.root / record["path"]
            flag = "--video" if record["data_type"] == "video" else "--image"
            run = invoke("infer", "--model", corpus.model, flag, path, "--question", "Which way?",
                         "--frames", 4,
                         "--max-pixels", PIXELS, "--max-new-tokens", 4, "--greedy")
            verdicts[kind] = file_verdict(run, path)
        return verdicts
    return dict.fromkeys(RECORD_KINDS, "n/a")


def eval_duplicate_verdict(corpus: Corpus, work: Path) -> str:
    """Ids q, q, q#1: three items, three rows, each scored from its own output."""
    items = [_record("q", "image"), _record("q", "image", solution="<answer>A</answer>"),
             _record("q#1", "image")]
    data = corpus.root / "duplicates.json"
    data.write_text(json.dumps(items))
    run = invoke(*eval_args(corpus, data, work / "eval-duplicates"))
    if run.crashed or run.code != 0:
        return "crash"
    rows = [json.loads(line) for line in (work / "eval-duplicates" / "generic.ordered.jsonl").read_text()
            .splitlines()]
    solutions = [row["solution"] for row in rows]
    return "clean" if len(rows) == 3 and sorted(solutions) == ["A", "B", "B"] else "accepted"


def import_verdicts(corpus: Corpus, work: Path) -> dict[str, str]:
    """import-bench on a file of the wrong shape, and VideoMMMU options that begin like labels."""
    shape = corpus.root / "multi-choice.json"
    shape.write_text(json.dumps({"video1": ["not", "a", "dict"]}))
    run = invoke("data", "import-bench", "--bench", "tempcompass", "--src", shape, "--out", work / "t.json")
    verdicts = {"import_wrong_shape": file_verdict(run, shape)}
    texts = [f"R. L at point C = {100 + k}.{k}5 m" for k in range(10)]
    src = corpus.root / "adaptation_video.json"
    src.write_text(json.dumps({"Adaptation": [{"id": "test_Mechanical_Engineering_5", "question": "R.L of C?",
                                               "options": texts, "answer": "D"}]}))
    run = invoke("data", "import-bench", "--bench", "videommmu", "--src", src, "--out", work / "v.json")
    if run.crashed:
        verdicts["import_labels_like_r_l"] = "crash"
    else:
        rows = json.loads((work / "v.json").read_text()) if (work / "v.json").exists() else []
        ok = (len(rows) == 1 and rows[0]["options"][3] == f"D. {texts[3]}"
              and rows[0]["solution"] == "<answer>D</answer>")
        verdicts["import_labels_like_r_l"] = "clean" if ok else "accepted" if rows else "unclear"
    return verdicts


def table(corpus: Corpus, work: Path, commands: tuple[str, ...] = COMMANDS) -> dict[str, dict[str, str]]:
    """kind -> command -> verdict, over the whole corpus."""
    cells: dict[str, dict[str, str]] = {kind: dict.fromkeys(COMMANDS, "n/a") for kind in KINDS}
    for command in commands:
        for kind in FILE_KINDS:
            cells[kind][command] = run_file_kind(command, kind, corpus, work)
        for kind, verdict in record_verdicts(command, corpus, work).items():
            cells[kind][command] = verdict
    if "eval" in commands:
        cells["duplicate_ids"]["eval"] = eval_duplicate_verdict(corpus, work)
    if "import-bench" in commands:
        for kind, verdict in import_verdicts(corpus, work).items():
            cells[kind]["import-bench"] = verdict
    return cells


def markdown(cells: dict[str, dict[str, str]]) -> str:
    lines = ["| kind | " + " | ".join(COMMANDS) + " |", "|---" * (len(COMMANDS) + 1) + "|"]
    lines += [f"| {kind} | " + " | ".join(row[c] for c in COMMANDS) + " |" for kind, row in cells.items()]
    return "\n".join(lines)


if __name__ == "__main__":  # print the table: python tests/reliability/bad_inputs.py [WORKDIR]
    import sys
    import tempfile

    logging.getLogger().addHandler(logging.NullHandler())  # keeps the CLI's basicConfig off CliRunner's
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="bad-inputs-"))
    commands = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else COMMANDS
    shutil.rmtree(base, ignore_errors=True)
    built = build_corpus(base / "corpus")
    print(markdown(table(built, base / "work", commands)))
    for argv, run in RUNS:
        if run.crashed:
            print("\n$ videor1", " ".join(argv), "\n", run.output[-3000:])
