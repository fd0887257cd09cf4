"""Forget sets: one class (CR single), the first k of a fixed class permutation (CR multi), or a
random set of training samples (HR). Multi-class permutations and HR indices are drawn once and
stored in the runs tree, so every stage and every rerun forgets exactly the same data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from core import paths
from core.runtime import UserError
from core.storage import atomic_write_json

PERMUTATION_SEED = 0


@dataclass(frozen=True)
class ForgetSet:
    """What to forget. CR: `classes`; HR: `samples`, indices into the train split."""

    mode: str  # "CR" or "HR"
    tag: str
    classes: tuple[int, ...] = ()
    samples: tuple[int, ...] = ()
    seed: int | None = None  # HR: the seed of the draw

    def mask(self, split: str, targets: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Boolean mask of the forget part of a split; `index` = positions in that split (HR)."""
        if self.mode == "CR":
            return torch.isin(targets, torch.tensor(self.classes, dtype=targets.dtype, device=targets.device))
        if split != "train":
            return torch.zeros_like(targets, dtype=torch.bool)
        if index is None:
            index = torch.arange(len(targets), device=targets.device)
        return torch.isin(index, torch.tensor(self.samples, dtype=index.dtype, device=index.device))


def single(c: int) -> ForgetSet:
    return ForgetSet("CR", f"c{c}", classes=(c,))


def class_permutation(root: str, dataset: str, num_classes: int) -> list[int]:
    """A fixed per-data-set permutation of the classes (seeded, recorded on first use)."""
    f = paths.forget_set_file(root, dataset, "class_permutation")
    if f.exists():
        import json
        perm = json.loads(f.read_text())["permutation"]
        if sorted(perm) != list(range(num_classes)):
            raise UserError(f"{f}: not a permutation of {num_classes} classes; delete it to redraw")
        return perm
    perm = np.random.default_rng(PERMUTATION_SEED).permutation(num_classes).tolist()
    atomic_write_json(f, {"dataset": dataset, "seed": PERMUTATION_SEED, "permutation": perm})
    return perm


def multi(root: str, dataset: str, num_classes: int, k: int) -> ForgetSet:
    if not 1 <= k < num_classes:
        raise UserError(f"--num_forget_classes {k}: must be between 1 and {num_classes - 1} for {dataset}")
    perm = class_permutation(root, dataset, num_classes)
    return ForgetSet("CR", f"multi{k}", classes=tuple(sorted(perm[:k])))


def hr_tag(n: int, seed: int) -> str:
    return f"hr{n}_s{seed}"


def sample_hr(root: str, dataset: str, n_train: int, n: int, seed: int, overwrite: bool = False) -> ForgetSet:
    """Draw `n` train-split indices with `seed` and store them (SCAR's sample_fgt_samples.py)."""
    if not 1 <= n < n_train:
        raise UserError(f"HR forget set of {n} samples: must be between 1 and {n_train - 1} "
                        f"(the train split of {dataset} has {n_train})")
    tag = hr_tag(n, seed)
    f = paths.forget_set_file(root, dataset, tag)
    if f.exists() and not overwrite:
        return load_hr(root, dataset, n, seed, n_train)
    idx = np.sort(np.random.default_rng(seed).choice(n_train, size=n, replace=False)).tolist()
    atomic_write_json(f, {"dataset": dataset, "seed": seed, "n_train": n_train, "indices": idx})
    return ForgetSet("HR", tag, samples=tuple(idx), seed=seed)


def load_hr(root: str, dataset: str, n: int, seed: int, n_train: int | None = None) -> ForgetSet:
    import json
    tag = hr_tag(n, seed)
    f = paths.forget_set_file(root, dataset, tag)
    if not f.exists():
        raise UserError(f"HR forget set {f} not found; run sample_fgt_samples.py --dataset {dataset} "
                        f"--hr_samples {n} first")
    redraw = f"redraw it with sample_fgt_samples.py --dataset {dataset} --hr_samples {n} --hr_seed {seed} --overwrite"
    try:
        d = json.loads(f.read_text())
        idx, drawn_from = [int(i) for i in d["indices"]], int(d["n_train"])
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{f}: not a forget-set file ({type(e).__name__}: {e}); {redraw}") from None
    if n_train is not None and drawn_from != n_train:
        raise UserError(f"{f} was drawn from a train split of {drawn_from} samples, this one has "
                        f"{n_train} (different --val_fraction?); {redraw}")
    if not idx:
        raise UserError(f"{f}: empty forget set (no indices); {redraw}")
    if len(set(idx)) != len(idx) or min(idx) < 0 or max(idx) >= drawn_from:
        raise UserError(f"{f}: indices must be distinct and within 0..{drawn_from - 1}; {redraw}")
    return ForgetSet("HR", tag, samples=tuple(idx), seed=seed)


def hr_seeds(root: str, dataset: str, n: int) -> list[int]:
    """The seeds of every HR draw of `n` samples stored for `dataset` (sample_fgt_samples.py draws 0..9):
    what a stage covers when --hr_seed is not given."""
    folder = paths.forget_set_file(root, dataset, hr_tag(n, 0)).parent
    found = (re.fullmatch(rf"hr{n}_s(\d+)\.json", f.name) for f in folder.glob(f"hr{n}_s*.json"))
    return sorted(int(m.group(1)) for m in found if m)
