"""Data-parallel RL for real: two CPU processes (gloo) under `accelerate launch`, a few steps.

Checks that both ranks end with identical weights (and that these moved, and are what the rank-0
checkpoint exports), that the ranks trained on disjoint questions, that the run's records are
counted over both ranks, and that warnings about skipped records appear once, not once per rank.

Launcher note: `accelerate launch --cpu --num_processes 2` starts ONE process (accelerate's
`--cpu` selects its single-process launcher). Two CPU processes need the torchrun launcher
(`--multi_gpu`) with the GPUs hidden: the trainer then runs `MULTI_CPU` with gloo. Each rank
writes `world` to its report, so a launcher that silently runs one process fails this test.
"""

from __future__ import annotations

import collections
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rl_support import rl_overrides

pytestmark = pytest.mark.slow

PPD = 2  # prompts per device
STEPS = 2
WORLD = 2

# Every rank runs the library's own entry points, then reports what it holds: the sha256 of its
# trained weights, of the initial weights, of the rank-0 export, and the questions its
# QuestionSource (deterministic: a pure function of step, micro, rank and world) gives it per step.
LAUNCHER = textwrap.dedent('''
    import hashlib, json, logging, sys
    from pathlib import Path

    import torch
    from accelerate import PartialState

    from videor1.data.loading import load_records
    from videor1.media.loader import SkipLog
    from videor1.models.loading import ModelOptions, load_model, load_processor
    from videor1.train.config import load_config
    from videor1.train.data import QuestionSource
    from videor1.train.rl import train


    def digest(model) -> str:
        h = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()


    report_dir, overrides = Path(sys.argv[1]), sys.argv[2:]
    logging.basicConfig(level=logging.WARNING)
    config = load_config(None, overrides)
    result = train(config, progress=False)
    state = PartialState()
    rank, world = state.process_index, state.num_processes
    report = {"rank": rank, "world": world, "distributed_type": state.distributed_type.value,
              "trained": digest(result.model)}
    logging.disable(logging.CRITICAL)  # what follows only re-derives; its warnings are not the run's
    report["initial"] = digest(load_model(config.model))
    exported = result.output_dir / f"checkpoint-{config.run.max_steps}" / "hf"
    export = ModelOptions(path=exported, dtype="float32")
    report["export"] = digest(load_model(export))
    processor = load_processor(config.model.path)
    records = load_records(config.data.train_file, media_root=config.data.media_root)
    skips = SkipLog()
    source = QuestionSource(records, config, processor, skips, rank, world)
    report["steps"] = []
    for step in range(config.run.max_steps):
        for micro in range(config.run.grad_accum):
            before = set(skips.errors)
            ids = [q.record.problem_id for q in source.questions(step, micro)]
            report["steps"].append({"step": step, "micro": micro, "ids": ids,
                                    "skipped": sorted(set(skips.errors) - before)})
    (report_dir / f"rank{rank}.json").write_text(json.dumps(report))
''')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(target: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(WORLD), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), *target]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def ddp_data(rl_workspace, tmp_path_factory) -> tuple[Path, list[str], dict]:
    """The synthetic records in file order, two of them with missing media (one in each rank's first
    slice) and one malformed record (dropped at load time, by every rank)."""
    records = json.loads((rl_workspace / "synth" / "rl_train.json").read_text())
    broken = [dict(records[i], problem_id=f"broken-media-{i}", path=f"videos/missing-{i}.mp4")
              for i in (1, 2)]
    malformed = {k: v for k, v in records[5].items() if k != "problem"} | {"problem_id": "malformed"}
    rows = [records[0], *broken, *records[3:], malformed]
    path = tmp_path_factory.mktemp("ddp_data") / "train.json"
    path.write_text(json.dumps(rows))
    order = [row["problem_id"] for row in rows[:-1]]  # data.shuffle=false: positions follow the file
    return path, order, {"broken-media-1", "broken-media-2"}


def _overrides(rl_workspace: Path, out: Path, data: Path) -> list[str]:
    return rl_overrides(rl_workspace, out, **{
        "run.max_steps": STEPS, "run.prompts_per_device": PPD, "optim.lr": 1e-3, "data.train_file": data,
        "data.media_root": rl_workspace / "synth", "data.shuffle": "false"})


def test_cli_under_accelerate_launch_two_cpu_processes(rl_workspace, ddp_data, tmp_path):
    data, order, broken = ddp_data
    out = tmp_path / "run"
    proc = _launch(["-m", "videor1.cli", "rl", *_overrides(rl_workspace, out, data)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-6000:]

    # both processes took part: each saved its RNG state into the (single, rank-0 written) checkpoint
    checkpoint = out / f"checkpoint-{STEPS}"
    assert sorted(p.name for p in checkpoint.glob("random_states_*.pkl")) == ["random_states_0.pkl",
                                                                              "random_states_1.pkl"]
    assert (out / "latest").read_text().strip() == checkpoint.name

    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, STEPS + 1))  # one writer, not one per rank
    # both missing-media records were met in step 1, one on each rank: the run's count covers both ranks
    assert lines[-1]["data/skipped_records"] == len(broken)

    # each skip warning once: the malformed record (every rank parses the file) and each missing video
    skip_lines = [re.sub(r"^.*?(WARNING)", r"\1", line) for line in proc.stderr.splitlines()
                  if re.search(r"skipp(ed|ing)", line)]
    counts = collections.Counter(skip_lines)
    assert sum("malformed" in line for line in counts) == 1, skip_lines
    for problem_id in broken:
        assert sum(problem_id in line for line in counts) == 1, skip_lines
    duplicated = {line: n for line, n in counts.items() if n > 1}
    assert not duplicated, f"warnings repeated per rank: {duplicated}"


def test_ranks_hold_identical_weights_and_see_disjoint_questions(rl_workspace, ddp_data, tmp_path):
    data, order, broken = ddp_data
    launcher = tmp_path / "launch_train.py"
    launcher.write_text(LAUNCHER)
    reports = tmp_path / "reports"
    reports.mkdir()
    proc = _launch([str(launcher), str(reports), *_overrides(rl_workspace, tmp_path / "run", data)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-6000:]

    ranks = [json.loads((reports / f"rank{i}.json").read_text()) for i in range(WORLD)]
    assert [r["rank"] for r in ranks] == list(range(WORLD))
    assert all(r["world"] == WORLD and r["distributed_type"] == "MULTI_CPU" for r in ranks), ranks

    # identical weights on both ranks, moved by training, and equal to what rank 0 exported
    assert ranks[0]["trained"] == ranks[1]["trained"]
    assert ranks[0]["initial"] == ranks[1]["initial"]
    assert ranks[0]["trained"] != ranks[0]["initial"]
    assert all(r["export"] == r["trained"] for r in ranks)

    assert [(s["step"], s["micro"]) for s in ranks[0]["steps"]] == [(step, 0) for step in range(STEPS)]
    for step, slices in enumerate(zip(*(r["steps"] for r in ranks))):
        assert all((s["step"], s["micro"]) == (step, 0) for s in slices)
        skipped = [[_problem_id(label) for label in s["skipped"]] for s in slices]
        seen = [set(s["ids"]) | set(skip) for s, skip in zip(slices, skipped)]
        assert all(len(s) == PPD for s in seen), slices  # PPD distinct questions per rank
        assert not seen[0] & seen[1], slices  # ranks never share a question
        # together: this step's WORLD x PPD positions of the (unshuffled) order, rank r the r-th
        # slice; a record with missing media is dropped, never replaced by another
        first = step * WORLD * PPD
        for rank, (s, skip) in enumerate(zip(slices, skipped)):
            expected = order[first + rank * PPD: first + (rank + 1) * PPD]
            assert s["ids"] == [i for i in expected if i not in broken]
            assert sorted(skip) == sorted(i for i in expected if i in broken)
    assert {_problem_id(x) for r in ranks for s in r["steps"] for x in s["skipped"]} == broken


def _problem_id(label: str) -> str:
    """The problem id in a record label, `problem_id='rl-000001'`."""
    match = re.fullmatch(r"problem_id='(.*)'", label)
    assert match, label
    return match.group(1)
