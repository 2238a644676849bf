"""Run one evaluation in its own process: `python eval_child.py CONFIG.json` (the kill-and-resume test)."""

import sys
from pathlib import Path

import torch

from videor1.eval import EvalConfig, run_suite

if __name__ == "__main__":
    torch.set_num_threads(1)  # as in the test process: the same kernels give the same numbers
    run_suite(EvalConfig.model_validate_json(Path(sys.argv[1]).read_text()), show_progress=False)
