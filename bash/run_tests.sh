#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then run the pytest suite on CPU.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/bash/setup_env.sh"
cd "$REPO"
export UNLEARN_PROGRESS=0 CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}"
exec python -m pytest -q "$@"
