#!/usr/bin/env bash
# Set up the environment and run the main job. Until `videor1 demo` exists (issue: the CPU demo),
# the main job is the data pipeline on the example records: validate, describe, mix, prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-outputs/example}
mkdir -p "$OUT"
V=.venv/bin/videor1
$V data validate examples/mini/train.json --report "$OUT/train.bad.jsonl"
$V data validate examples/mini/cot.json --report "$OUT/cot.bad.jsonl"
echo "--- a file with bad records: each is reported with its id and reason, none is dropped silently"
$V data validate examples/mini/with_errors.json --report "$OUT/with_errors.bad.jsonl" --allow-bad
$V data mix --config examples/mini/mix.yaml --out "$OUT/mix.json"
$V data validate "$OUT/mix.json" --report "$OUT/mix.bad.jsonl"
$V data stats "$OUT/mix.json" --plot "$OUT/mix_stats.png"
echo "--- the question the model is asked for the first record"
$V prompt examples/mini/train.json --index 0
echo "outputs in $OUT"
