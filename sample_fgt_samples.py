"""HR mode, step 0 (SCAR's sample_fgt_samples.py): draw the random training samples to forget, once
per seed, and store their indices (into the train split) under <root>/<dataset>/forget_sets/.

    python sample_fgt_samples.py --dataset cifar10                  # 5,000 samples, seeds 0..9
    python sample_fgt_samples.py --dataset digits --hr_samples 100 --hr_seed 3
Defaults: CIFAR-10 and ResNet-18, like the other stage scripts.
"""

from __future__ import annotations

import opts
from core import paths
from core.runtime import run_stage
from data.forget import sample_hr
from stages.pipeline import splits

DEFAULT_SEEDS = range(10)  # SCAR: ten seeds, one Oracle per seed


def main() -> None:
    runs = opts.parse_runs(stage="sample", defaults=opts.SEED_A_STAGE_DEFAULTS)
    args = runs[0]
    n_train = len(splits(args)["train"])
    seeds = list(DEFAULT_SEEDS) if args.hr_seed is None else [r.hr_seed for r in runs]
    for s in seeds:
        existed = paths.forget_set_file(args.root, args.dataset, f"hr{args.hr_samples}_s{s}").exists()
        fs = sample_hr(args.root, args.dataset, n_train, args.hr_samples, s, overwrite=args.overwrite)
        state = "kept" if existed and not args.overwrite else "drew"
        print(f"{state} {len(fs.samples)} of {n_train} train samples, seed {s} -> "
              f"{paths.forget_set_file(args.root, args.dataset, fs.tag)}")


if __name__ == "__main__":
    run_stage(main)
