"""Stage 3, both scenarios: the name seed A's quick-start calls (`python test_originalmodel.py`).
Runs the single-class then the multi-class evaluation of test_originalmodel_{singleclass,multiclass}.py.
"""

import opts
from core.runtime import run_stage
from stages.baselines import evaluate_originals


def main() -> None:
    for mode in ("single", "multi"):
        args = opts.parse_args(stage="baseline", defaults={**opts.SEED_A_STAGE_DEFAULTS, "forget_mode": mode})
        evaluate_originals(args, "test_originalmodel.py")


if __name__ == "__main__":
    run_stage(main)
