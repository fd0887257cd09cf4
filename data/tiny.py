"""TinyImageNet-200 from its standard folder layout under --data_root/tiny-imagenet-200:
train/<wnid>/images/*.JPEG, val/images/*.JPEG with val/val_annotations.txt (file, wnid, box).
Classes are the sorted wnids of train/; the labelled val part serves as the test split.
"""

from __future__ import annotations

from pathlib import Path

import torch

from data import DatasetInfo, ImageSet, cifar, register_dataset

FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def load(root: Path) -> tuple[ImageSet, ImageSet]:
    from core.runtime import UserError
    base = root / FOLDER
    ann = base / "val" / "val_annotations.txt"
    if not (base / "train").is_dir() or not ann.is_file():
        raise UserError(f"TinyImageNet not found in {base} (need train/<wnid>/images and "
                        f"val/val_annotations.txt); download {URL} and unzip it into --data_root {root}, {cifar.GET}")
    wnids = sorted(p.name for p in (base / "train").iterdir() if p.is_dir())
    cls = {w: i for i, w in enumerate(wnids)}
    files, labels = [], []
    for w in wnids:
        imgs = sorted((base / "train" / w / "images").glob("*.JPEG"))
        files += imgs
        labels += [cls[w]] * len(imgs)
    vfiles, vlabels = [], []
    for line in ann.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        if parts[1] not in cls:
            raise UserError(f"{ann}: class {parts[1]!r} of {parts[0]} has no train/{parts[1]} folder")
        vfiles.append(base / "val" / "images" / parts[0])
        vlabels.append(cls[parts[1]])
    if not files or not vfiles:
        raise UserError(f"TinyImageNet in {base} has no images (train: {len(files)}, val: {len(vfiles)})")
    return (ImageSet(files, torch.as_tensor(labels, dtype=torch.long)),
            ImageSet(vfiles, torch.as_tensor(vlabels, dtype=torch.long)))


# The seeds' recipe (see data/cifar.py) with the small stem, StepLR every 25 epochs (x0.1) instead of
# cosine, and 64 px crops with pad 4, flip and rotations of up to 15 degrees.
_AUG = {"resnet": dict(crop=0.0625, rotate=15), "transformer": dict(crop=0, rotate=0)}
SEED_B = {**cifar.SEED_B, "stem": "small", "scheduler": [25], "augment": _AUG}
SEED_A = {**cifar.SEED_A, "stem": "small", "scheduler": list(range(25, 300, 25)), "augment": _AUG}

register_dataset(DatasetInfo(
    name="TinyImageNet", num_classes=200, native_size=64, mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225), flip=True, load=load, where=f"{URL}, unzipped into --data_root",
    train_recipe=SEED_A, recipes={"seedB": SEED_B},
    img_size={"resnet": 64, "transformer": 224},
    forget_classes=tuple(range(0, 200, 20)), multi_k=(2, 5, 10, 20), hr_samples=10000))
