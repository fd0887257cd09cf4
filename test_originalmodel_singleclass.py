"""Stage 3 (single class): evaluate every original for each forget class in turn (or --forget_class)
and append one row per (original, class) to <root>/results/original.csv.

    python test_originalmodel_singleclass.py --dataset digits --model resnet18 --n_model 1
"""

import opts
from core.runtime import run_stage
from stages.baselines import evaluate_originals


def main() -> None:
    args = opts.parse_args(stage="baseline", defaults={**opts.SEED_A_STAGE_DEFAULTS, "forget_mode": "single"})
    evaluate_originals(args, "test_originalmodel_singleclass.py")


if __name__ == "__main__":
    run_stage(main)
