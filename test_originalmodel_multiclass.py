"""Stage 3 (multi class): evaluate every original with the first k classes of the data set's fixed
permutation forgotten (--num_forget_classes k, default each k of hparams.MULTI_K) and append rows to
<root>/results/original.csv.

    python test_originalmodel_multiclass.py --dataset cifar100 --model resnet18 --num_forget_classes 10
"""

from core.runtime import run_stage
from stages.baselines import evaluate_originals

if __name__ == "__main__":
    run_stage(lambda: evaluate_originals(forget_mode="multi"))
