"""Data sets, transforms and splits.

Each data set is registered with its facts (classes, native size, normalisation) and a loader that
returns its official train and test parts as `ImageSet`s. The framework carves a validation split
from train (fixed, stratified, independent of the model seed) so that model selection never reads
the test split. Splits used downstream: `train` (train minus val), `val`, `test`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

SPLITS = ("train", "val", "test")
VAL_SEED = 0  # the val carve is a property of the data set, shared by every model and seed


@dataclass
class ImageSet:
    """Images (uint8 tensor N×3×H×W, or a list of image files) and integer labels."""

    images: torch.Tensor | list[Path]
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, idx: torch.Tensor | np.ndarray) -> ImageSet:
        idx = torch.as_tensor(idx, dtype=torch.long)
        imgs = self.images[idx] if isinstance(self.images, torch.Tensor) else [self.images[i] for i in idx.tolist()]
        return ImageSet(imgs, self.targets[idx])

    def image(self, i: int) -> torch.Tensor:
        if isinstance(self.images, torch.Tensor):
            return self.images[i]
        from PIL import Image
        with Image.open(self.images[i]) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)


@dataclass(frozen=True)
class DatasetInfo:
    """Everything the framework knows about a data set, in one place: adding a data set is one module
    that registers one of these."""

    name: str
    num_classes: int
    native_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    flip: bool  # horizontal flips are label-preserving (not for digits)
    load: Callable[[Path], tuple[ImageSet, ImageSet]]  # data_root -> (official train, official test)
    where: str  # how to obtain it, for the missing-data error
    # Training recipe of its originals and Oracles (the Oracle uses the original's recipe on the retain
    # data, so the gap to it measures unlearning, not a different budget): epochs, bsize, lr, momentum,
    # wd, label_smoothing, scheduler, stem ('small' 3x3 or 'imagenet' 7x7 ResNet stem), num_workers.
    train_recipe: dict
    img_size: dict[str, int]  # input resolution per backbone family ("resnet", "transformer")
    forget_classes: tuple[int, ...]  # the classes forgotten "each in turn"
    multi_k: tuple[int, ...]  # multi-class forgetting: the k values run when --num_forget_classes is unset
    hr_samples: int  # HR mode: random training samples forgotten


_DATASETS: dict[str, DatasetInfo] = {}
MODULES = ("digits", "cifar", "tiny")  # each registers its data set(s) on import; imported on first lookup


def _load() -> None:
    for m in MODULES:
        importlib.import_module(f"data.{m}")


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    _DATASETS[info.name] = info
    return info


def list_datasets() -> list[str]:
    _load()
    return list(_DATASETS)


def get_info(name: str) -> DatasetInfo:
    _load()
    if name not in _DATASETS:
        from core.runtime import UserError
        raise UserError(f"unknown dataset {name!r}; valid: {', '.join(_DATASETS)}")
    return _DATASETS[name]


def stratified_split(targets: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (keep, held_out) with `fraction` of every class held out, deterministically."""
    rng = np.random.default_rng(seed)
    t = targets.numpy()
    held = []
    for c in np.unique(t):
        idx = np.flatnonzero(t == c)
        k = int(round(fraction * len(idx)))
        held.append(rng.permutation(idx)[:k])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    keep = np.setdiff1d(np.arange(len(t)), held_out)
    return torch.as_tensor(keep), torch.as_tensor(held_out)


def load_splits(name: str, data_root: str | Path, val_fraction: float) -> dict[str, ImageSet]:
    """The three splits of a data set; `val` is carved from the official train part."""
    info = get_info(name)
    train, test = info.load(Path(data_root))
    keep, val = stratified_split(train.targets, val_fraction, VAL_SEED)
    return {"train": train.subset(keep), "val": train.subset(val), "test": test}


def make_transform(info: DatasetInfo, img_size: int, train: bool) -> v2.Compose:
    """Standard augmentation (pad-crop, flip where valid) for training; resize+normalise for both."""
    ops: list = []
    if img_size != info.native_size:
        ops.append(v2.Resize((img_size, img_size), antialias=True))
    if train:
        ops.append(v2.RandomCrop(img_size, padding=max(1, img_size // 8)))
        if info.flip:
            ops.append(v2.RandomHorizontalFlip())
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(info.mean, info.std)]
    return v2.Compose(ops)


class TorchDataset(Dataset):
    """An ImageSet with a transform, as a torch Dataset yielding (image, label)."""

    def __init__(self, images: ImageSet, transform: Callable):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images.image(i)), int(self.images.targets[i])


def make_dataset(name: str, images: ImageSet, img_size: int, train: bool) -> TorchDataset:
    return TorchDataset(images, make_transform(get_info(name), img_size, train))

