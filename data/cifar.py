"""CIFAR-10 / CIFAR-100 through torchvision, from the python-pickle batches under --data_root.

torchvision's loaders are used as they are, except that files are checked for presence rather than
MD5, so small batches in the real format (the tests write them) load through the same code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from data import DatasetInfo, ImageSet, register_dataset


class _CIFAR10(CIFAR10):
    train_list = [[f, None] for f, _ in CIFAR10.train_list]
    test_list = [[f, None] for f, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


class _CIFAR100(CIFAR100):
    train_list = [[f, None] for f, _ in CIFAR100.train_list]
    test_list = [[f, None] for f, _ in CIFAR100.test_list]
    meta = {**CIFAR100.meta, "md5": None}


def _loader(cls: type, name: str):
    def load(root: Path) -> tuple[ImageSet, ImageSet]:
        from core.runtime import UserError
        where = root / cls.base_folder
        parts = []
        for train in (True, False):
            try:
                ds = cls(str(root), train=train, download=False)
            except Exception as e:  # torchvision raises RuntimeError/OSError/pickle errors
                raise UserError(f"{name} not found or unreadable in {where} ({str(e).splitlines()[0]}); "
                                f"download {cls.url} and extract it into --data_root {root}, {GET}") from None
            imgs = torch.as_tensor(ds.data).permute(0, 3, 1, 2).contiguous()
            parts.append(ImageSet(imgs, torch.as_tensor(ds.targets, dtype=torch.long)))
        return parts[0], parts[1]
    return load


# The seeds' recipe (both seeds' training_original.py, ResNets): ImageNet weights, SGD lr 0.1 without
# momentum, wd 5e-5, label smoothing 0.4, batch 256, cosine; pad-4 crop + flip at 32 px; ViT/Swin resized
# to 224 px with flips only. CIFAR-10 keeps the ImageNet stem (7x7/2 + max-pool), CIFAR-100 the small one.
# seedB (SCAR): 50 epochs, cosine over 50. seedA: 300 epochs, cosine over 300, early stop after 30 epochs
# without improvement (seed A stops on test accuracy; here on the val split).
SEED_B = dict(name="seedB", pretrained=True, epochs=50, patience=None, bsize=256, lr=0.1, momentum=0.0, wd=5e-5,
              label_smoothing=0.4, scheduler=["cosine"], num_workers=4,
              augment={"resnet": dict(crop=0.125, rotate=0), "transformer": dict(crop=0, rotate=0)})
SEED_A = {**SEED_B, "name": "seedA", "epochs": 300, "patience": 30}
GET = "or run on the embedded data set with --dataset digits (no download)"

register_dataset(DatasetInfo(
    name="cifar10", num_classes=10, native_size=32, mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010), flip=True, load=_loader(_CIFAR10, "CIFAR-10"),
    where=f"{CIFAR10.url}, extracted into --data_root (gives {CIFAR10.base_folder}/)",
    train_recipe={**SEED_A, "stem": "imagenet"}, recipes={"seedB": {**SEED_B, "stem": "imagenet"}},
    img_size={"resnet": 32, "transformer": 224},
    forget_classes=tuple(range(10)), multi_k=(2, 5), hr_samples=5000))
register_dataset(DatasetInfo(
    name="cifar100", num_classes=100, native_size=32, mean=(0.5071, 0.4867, 0.4408),
    std=(0.2675, 0.2565, 0.2761), flip=True, load=_loader(_CIFAR100, "CIFAR-100"),
    where=f"{CIFAR100.url}, extracted into --data_root (gives {CIFAR100.base_folder}/)",
    train_recipe={**SEED_A, "stem": "small"}, recipes={"seedB": {**SEED_B, "stem": "small"}},
    img_size={"resnet": 32, "transformer": 224},
    forget_classes=tuple(range(0, 100, 10)), multi_k=(2, 5, 10, 20), hr_samples=5000))
