"""Bad input never crashes, never blocks, never substitutes: the corpus of bad_inputs.py (35 kinds: whole
files that cannot be read, bad records among good ones, media that cannot be used or lie outside the media
root, duplicate ids, importer inputs) through every command that reads it, as real `videor1` command lines.

Each cell of the table (kind x command) must be clean: the documented exit code, one message naming the
file or the record, no traceback, the bad input never used as if it were good, and the good records around
it still processed. The corpus and the tiny model are built once for the module; the commands that load a
model (eval, rl, sft, annotate, infer) are the slow part.
"""

from __future__ import annotations

import json
import logging

import bad_inputs as corpus_module
import pytest
from bad_inputs import (
    FILE_KINDS,
    GOOD_IDS,
    MEDIA_KINDS,
    PATH_KINDS,
    RECORD_KINDS,
    SCHEMA_KINDS,
    build_corpus,
    eval_duplicate_verdict,
    import_verdicts,
    invoke,
    record_verdicts,
    run_file_kind,
)

FAST = ("validate", "stats", "prompt", "mix", "import-bench", "eval", "annotate")  # fail before any model
MODEL = ("eval", "rl", "sft", "annotate", "infer")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    logging.getLogger("videor1").setLevel(logging.INFO)
    return build_corpus(tmp_path_factory.mktemp("bad-inputs"))


def _failing(cells: dict[str, str]) -> str:
    """The cells that are not clean, with the last command lines' output (what a reader needs to fix it)."""
    bad = {kind: verdict for kind, verdict in cells.items() if verdict not in ("clean", "n/a")}
    tail = "\n".join(f"$ videor1 {' '.join(argv)}\n{run.output[-1500:]}"
                     for argv, run in corpus_module.RUNS[-3:])
    return f"{bad}\n{tail}"


@pytest.mark.parametrize("command", FAST)
def test_a_file_that_cannot_be_read_is_one_line_naming_it_with_exit_2(corpus, tmp_path, command):
    cells = {kind: run_file_kind(command, kind, corpus, tmp_path) for kind in FILE_KINDS}
    assert set(cells.values()) == {"clean"}, _failing(cells)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["rl", "sft"])
def test_training_stops_on_an_unreadable_file_with_one_line_naming_it(corpus, tmp_path, command):
    cells = {kind: run_file_kind(command, kind, corpus, tmp_path) for kind in FILE_KINDS}
    assert set(cells.values()) == {"clean"}, _failing(cells)


@pytest.mark.parametrize("command", ["validate", "stats", "prompt", "mix"])
def test_each_bad_record_is_named_and_the_good_ones_go_on(corpus, tmp_path, command):
    cells = record_verdicts(command, corpus, tmp_path)
    assert set(cells.values()) <= {"clean", "n/a"}, _failing(cells)
    assert "clean" in cells.values()


@pytest.mark.slow
@pytest.mark.parametrize("command", MODEL)
def test_each_bad_record_is_skipped_by_the_commands_that_run_a_model(corpus, tmp_path, command):
    cells = record_verdicts(command, corpus, tmp_path)
    assert set(cells.values()) <= {"clean", "n/a"}, _failing(cells)
    if command != "infer":
        assert all(cells[kind] == "clean" for kind in RECORD_KINDS)


def test_validate_reports_every_reason_and_where_it_wrote_them(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = invoke("data", "validate", corpus.records["train"])
    assert run.code == 1 and not run.crashed
    report = tmp_path / "records.bad.jsonl"  # the default report, here: something to report
    assert f"reasons written to {report.name}" in run.output
    rows = {row["problem_id"] or f"line {row['index']}": row
            for row in map(json.loads, report.read_text().splitlines())}
    reasons = {pid: " ".join(row["reasons"]) for pid, row in rows.items()}
    expected = {"numerical_not_number": "not a number", "nan_answer": "not a number",
                "inf_answer": "not a number",
                "path_traversal": "outside the media root", "absolute_outside": "outside the media root",
                "symlink_outside": "outside the media root", "truncated_video": "CorruptMedia",
                "one_frame_video": "TooFewFrames", "huge_image": "decompression bomb",
                "elongated_video": "aspect ratio", "audio_only": "NoVideoStream", "media_empty": "empty",
                "answer_not_in_options": "not one of the option letters", "nan_segment": "start"}
    for kind, words in expected.items():
        assert words in reasons[kind], (kind, reasons[kind])
    assert not set(GOOD_IDS) & set(reasons)
    assert "media: " in run.output and "ms per video" in run.output  # what decoding the sampled frames cost
    # all valid: no report is written unless asked for
    good = tmp_path / "good.json"
    good.write_text(json.dumps(corpus_module.good_records()))
    clean = invoke("data", "validate", good, "--media-root", corpus.root)
    assert clean.code == 0 and "all 4 records are valid" in clean.output
    assert not (tmp_path / "good.bad.jsonl").exists()


def test_the_media_root_opt_out_is_explicit(corpus, tmp_path):
    run = invoke("data", "validate", corpus.records["train"], "--report", tmp_path / "r.jsonl",
                 "--allow-outside-media-root")
    reasons = {row["problem_id"]: row["reasons"] for row in map(json.loads, (tmp_path / "r.jsonl").read_text()
                                                                  .splitlines())}
    assert "absolute_outside" not in reasons and "symlink_outside" not in reasons  # opened: valid images
    assert "path_traversal" in reasons  # /etc/passwd is still no image
    assert run.code == 1


def test_annotate_refuses_an_output_directory_that_does_not_hold_the_media(corpus, tmp_path):
    good = corpus.root / "good.json"
    good.write_text(json.dumps(corpus_module.good_records()))
    out = tmp_path / "elsewhere" / "cot.json"  # its COT file's readers would refuse every record
    run = invoke(*corpus_module.annotate_args(corpus, good, out))
    assert run.code == 2 and not run.crashed
    assert "media lie outside" in run.output and "--allow-outside-media-root" in run.output
    assert not out.parent.exists() or not any(out.parent.iterdir())  # refused before any teacher work


@pytest.mark.slow
def test_duplicate_ids_each_get_their_own_row(corpus, tmp_path):
    assert eval_duplicate_verdict(corpus, tmp_path) == "clean"


def test_import_bench_refuses_a_file_of_the_wrong_shape_and_reads_r_l_options_as_texts(corpus, tmp_path):
    cells = import_verdicts(corpus, tmp_path)
    assert set(cells.values()) == {"clean"}, _failing(cells)


def test_the_corpus_has_every_kind_the_issue_names():
    assert len(FILE_KINDS + RECORD_KINDS) + 3 >= 25
    assert {"truncated_video", "media_empty", "media_missing", "not_a_video", "huge_image", "one_frame_video",
            "image_as_video", "nan_answer", "inf_answer", "wrong_type", "missing_field",
            "answer_not_in_options"} <= set(RECORD_KINDS)
    assert set(PATH_KINDS) <= set(RECORD_KINDS) and set(SCHEMA_KINDS) & set(MEDIA_KINDS) == set()
