"""The vLLM tests (marker `vllm`): they need vllm, i.e. the second environment .venv-vllm built by
scripts/setup_vllm.sh (scripts/test.sh runs them there), and are skipped where it does not import.
The folder is not called `vllm`: tests/ is on sys.path, and a tests/vllm folder imports as a namespace
package named vllm wherever the real one is not installed."""

from __future__ import annotations

import os

# before vllm is imported: its engine core in this process (the weight push is a Python call into it),
# and a small KV cache (GiB) on the CPU
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
