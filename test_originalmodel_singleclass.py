"""Stage 3 (single class): evaluate every original for each forget class in turn (or --forget_class)
and append one row per (original, class) to <root>/results/original.csv.

    python test_originalmodel_singleclass.py --dataset digits --model resnet18 --n_model 1
"""

from core.runtime import run_stage
from stages.baselines import evaluate_originals

if __name__ == "__main__":
    run_stage(lambda: evaluate_originals(forget_mode="single"))
