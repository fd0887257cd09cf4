"""Stage 3, both scenarios: the name seed A's quick-start calls (`python test_originalmodel.py`).
Runs the single-class then the multi-class evaluation of test_originalmodel_{singleclass,multiclass}.py.
"""

from core.runtime import run_stage
from stages.baselines import evaluate_originals


def main() -> None:
    evaluate_originals(forget_mode="single")
    evaluate_originals(forget_mode="multi")


if __name__ == "__main__":
    run_stage(main)
