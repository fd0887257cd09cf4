"""Seed B's README runs `python src/main.py ...` from its repository root: the same as main_def.py
(main.py with seed B's defaults: CIFAR-100, the whole network on images, SCAR, batch 1024, ...)."""

import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
runpy.run_path(str(REPO / "main_def.py"), run_name="__main__")
