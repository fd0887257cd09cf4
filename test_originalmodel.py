"""Stage 3, both scenarios: the name seed A's quick-start calls (`python test_originalmodel.py`).
Runs the single-class then the multi-class evaluation of test_originalmodel_{singleclass,multiclass}.py.
"""

from baselines import evaluate_originals
from runtime import run_stage


def main() -> None:
    evaluate_originals(forget_mode="single")
    evaluate_originals(forget_mode="multi")


if __name__ == "__main__":
    run_stage(main)
