"""Tiny data sets in the real on-disk formats (CIFAR python pickles, TinyImageNet folders), so the
real loaders are tested without downloads."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_cifar(root: Path, kind: str = "cifar10", per_batch: int = 20, n_test: int = 20, seed: int = 0) -> Path:
    """cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta (or cifar-100-python/train, test,
    meta) with random uint8 images and labels, as torchvision reads them."""
    rng = np.random.default_rng(seed)
    if kind == "cifar10":
        base, n_cls, key = root / "cifar-10-batches-py", 10, "labels"
        files = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": n_test}
        meta = ("batches.meta", {"label_names": [f"c{i}" for i in range(n_cls)]})
    else:
        base, n_cls, key = root / "cifar-100-python", 100, "fine_labels"
        files = {"train": per_batch * 5, "test": n_test}
        meta = ("meta", {"fine_label_names": [f"c{i}" for i in range(n_cls)]})
    base.mkdir(parents=True, exist_ok=True)
    for name, n in files.items():
        labels = (np.arange(n) % n_cls).tolist()
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        with open(base / name, "wb") as f:
            pickle.dump({"data": data, key: labels}, f)
    with open(base / meta[0], "wb") as f:
        pickle.dump(meta[1], f)
    return root


def write_tiny(root: Path, n_classes: int = 3, per_class: int = 4, n_val: int = 6, seed: int = 0) -> Path:
    """tiny-imagenet-200/train/<wnid>/images/*.JPEG and val/images + val_annotations.txt."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    base = root / "tiny-imagenet-200"
    wnids = [f"n{i:08d}" for i in range(n_classes)]
    for w in wnids:
        d = base / "train" / w / "images"
        d.mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / f"{w}_{j}.JPEG")
    vd = base / "val" / "images"
    vd.mkdir(parents=True, exist_ok=True)
    lines = []
    for j in range(n_val):
        name = f"val_{j}.JPEG"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(vd / name)
        lines.append(f"{name}\t{wnids[j % n_classes]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    return root
