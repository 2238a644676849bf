#!/usr/bin/env bash
# Set up the environment and run the main job: the CPU demo of the whole pipeline (videor1 demo):
# synthetic data -> tiny Qwen2.5-VL with perception pretraining -> SFT -> RL arms (GRPO, T-GRPO,
# ablations) -> evaluation with ordered and shuffled frames -> report (outputs/demo/report/).
# Arguments go to `videor1 demo` (e.g. --seeds 3, --quick, --out DIR). Running it again resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/videor1 demo "$@"
