#!/usr/bin/env bash
# Set up the environment and run the full test suite on 2 workers. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` for the quick subset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -n 2 "$@"
