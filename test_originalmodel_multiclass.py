"""Stage 3 (multi class): evaluate every original with the first k classes of the data set's fixed
permutation forgotten (--num_forget_classes k, default each k of the data set's list) and append rows
to <root>/results/original.csv.

    python test_originalmodel_multiclass.py --dataset cifar100 --model resnet18 --num_forget_classes 10
"""

import opts
from core.runtime import run_stage
from stages.baselines import evaluate_originals


def main() -> None:
    args = opts.parse_args(stage="baseline", defaults={**opts.SEED_A_STAGE_DEFAULTS, "forget_mode": "multi"})
    evaluate_originals(args, "test_originalmodel_multiclass.py")


if __name__ == "__main__":
    run_stage(main)
