#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then run the pytest suite on CPU, on two pytest-xdist
# workers, a whole module at a time, the slowest first (tests/conftest.py).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/bash/setup_env.sh"
cd "$REPO"
# PASSIVE: idle OpenMP threads sleep, so that processes sharing the cores do not slow each other down.
export UNLEARN_PROGRESS=0 CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}" OMP_WAIT_POLICY=PASSIVE
exec python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder "$@"
