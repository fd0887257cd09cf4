"""Seed B's (SCAR's) entry point: main.py with the whole network updated on images by default.

    python3 main_def.py --run_name cifar10_CR --dataset cifar10 --mode CR --cuda 0 --save_model --save_df \
        --run_unlearn --num_workers 4 --method SCAR --model resnet18 --bsize 1024 --lr 0.0005 --epochs 30 \
        --temperature 1 --lambda_1 1 --lambda_2 5 --delta .5 --gamma1 3 --gamma2 3
SCAR's README runs this name: main.py with seed B's defaults (opts.SEED_B_MAIN_DEFAULTS: CIFAR-100, the
full setting, SCAR, batch 1024, lr 5e-4, 30 epochs, milestones 25 40, ...) for every data set and method.
"""

import opts
from core.runtime import get_device, run_stage
from stages import experiment


def main() -> None:
    runs = opts.parse_runs(stage="main", defaults=opts.SEED_B_MAIN_DEFAULTS)
    experiment.main(runs, get_device(runs[0].cuda))


if __name__ == "__main__":
    run_stage(main)
