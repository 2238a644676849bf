"""Atomic checkpoints that resume exactly: model, optimizer, scheduler, every process's RNG states
(accelerate's `save_state`, which also handles FSDP and DeepSpeed), the step (the data position
follows from it) and the resolved config; plus a Hugging Face export (`hf/`) for the next stage.

A checkpoint is written to a temporary directory and renamed into place, then `latest` is replaced:
a run killed at any moment leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

STATE = "trainer_state.json"


def save_checkpoint(out_dir: Path, step: int, accelerator, policy, processor, config, keep: int | None = None,
                    parallel=None, optimizer=None) -> Path:
    """Checkpoint `step`: accelerate's state, plus (a model sharded by `parallel`, train.parallel) the
    model's and `optimizer`'s shards, and the gathered `hf/` export. Every process calls it."""
    final = out_dir / f"checkpoint-{step}"
    tmp = out_dir / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if parallel is not None:
        parallel.save_sharded(tmp, policy, optimizer)
    # on every rank: gathers ZeRO-3 / FSDP shards
    state = parallel.full_state_dict(policy) if parallel is not None else accelerator.get_state_dict(policy)
    if accelerator.is_main_process:
        export_model(accelerator.unwrap_model(policy).model, state, tmp / "hf")
        processor.save_pretrained(tmp / "hf")
        config.save(tmp / "config.yaml")
        (tmp / STATE).write_text(json.dumps({"step": step}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        pointer = out_dir / ".latest.tmp"
        pointer.write_text(final.name)
        os.replace(pointer, out_dir / "latest")
        _prune(out_dir, keep if keep is not None else config.run.keep_checkpoints, step)
    accelerator.wait_for_everyone()
    return final


def export_model(model, state: dict, directory: Path) -> None:
    """A full Hugging Face checkpoint of the policy: gathered weights; LoRA adapters merged into a
    copy of the base, so that the export loads like any checkpoint (the next stage, evaluation)."""
    if hasattr(model, "merge_and_unload"):
        copy.deepcopy(model).merge_and_unload().save_pretrained(directory)
        return
    prefix = "model."  # the keys of the GroupedPolicy wrapper
    model.save_pretrained(directory, state_dict={k.removeprefix(prefix): v for k, v in state.items()})


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run directory, or None."""
    pointer = out_dir / "latest"
    if pointer.is_file():
        candidate = out_dir / pointer.read_text().strip()
        if (candidate / STATE).is_file():
            return candidate
    complete = [p for p in out_dir.glob("checkpoint-*") if (p / STATE).is_file()]
    return max(complete, key=lambda p: int(p.name.split("-")[1]), default=None)


def load_checkpoint(path: Path, accelerator, parallel=None, policy=None, optimizer=None) -> int:
    """Restore everything `save_checkpoint` wrote; returns the step to continue from."""
    accelerator.load_state(str(path))
    if parallel is not None:
        parallel.load_sharded(path, policy, optimizer)
    return int(json.loads((path / STATE).read_text())["step"])


def _prune(out_dir: Path, keep: int, step: int) -> None:
    """Keep the `keep` newest complete checkpoints up to `step`, the one just written (which `latest`
    names); higher-numbered ones, left by an earlier run in the same directory, are not this run's."""
    complete = sorted((p for p in out_dir.glob("checkpoint-*") if (p / STATE).is_file()
                       and int(p.name.split("-")[1]) <= step), key=lambda p: int(p.name.split("-")[1]))
    for old in complete[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
