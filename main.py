"""Stage 5: unlearning runs. One row per (original, forget set) in <root>/results/unlearn.csv.

    python main.py --dataset digits --model resnet18 --method DELETE --setting fc --source synthetic
See README for every flag; `--setting fc|partial|full`, `--source real|synthetic`.
"""

import opts
from core.runtime import get_device, run_stage
from stages import experiment


def main() -> None:
    runs = opts.parse_runs(stage="main")
    experiment.main(runs, get_device(runs[0].cuda))


if __name__ == "__main__":
    run_stage(main)
