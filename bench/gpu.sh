#!/usr/bin/env bash
# The benchmark table on a CUDA machine, in one go (under 5 minutes on one GPU):
#   bench/gpu.sh [area …]      → prints the table, writes artifacts/bench-gpu.md
# A fresh machine gets the venv first (make setup). Models run in float16 on the GPU, as the lab
# runs them there; the bfloat16 rows are CPU-only and say so. torch.compile is skipped (minutes).
# The cluster variant comes with it (area "ray"; `bench/gpu.sh ray` alone): a local Ray head with
# the CNN and CLIP deployments, each replica given a quarter of the GPU (num_gpus: 0.25).
set -euo pipefail
cd "$(dirname "$0")/.."
make setup
.venv/bin/python - <<'PY'
import torch
assert torch.cuda.is_available(), "bench/gpu.sh needs a CUDA GPU (torch sees none)"
print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
exec .venv/bin/python -m bench --device cuda --compile none --out artifacts/bench-gpu.md "$@"
