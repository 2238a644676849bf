#!/usr/bin/env bash
# Set up the environment and run the main job. Until `videor1 demo` exists (issue: the CPU demo),
# the main job is the data pipeline: synthesise a temporal video dataset, validate it (every video
# probed, every image decoded), describe it, and show the question a record becomes; then the same
# on the hand-made example records, including a file with bad records.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-outputs/example}
mkdir -p "$OUT"
V=.venv/bin/videor1
$V data synth --out "$OUT/synth" --n 1000 --seed 0
for split in rl_train cot_train eval describe; do
  $V data validate "$OUT/synth/$split.json" --report "$OUT/synth/$split.bad.jsonl"
done
$V data stats "$OUT/synth/rl_train.json" --plot "$OUT/synth_stats.png"
echo "--- the question the model is asked for the first synthetic record"
$V prompt "$OUT/synth/rl_train.json" --index 0
echo "--- a file with bad records: each is reported with its id and reason, none is dropped silently"
$V data validate examples/mini/with_errors.json --report "$OUT/with_errors.bad.jsonl" --allow-bad
$V data mix --config examples/mini/mix.yaml --out "$OUT/mix.json"
$V data validate "$OUT/mix.json" --report "$OUT/mix.bad.jsonl"
echo "outputs in $OUT"
