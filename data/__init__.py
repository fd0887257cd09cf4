"""Data sets, transforms and splits.

Each data set is registered with its facts (classes, native size, normalisation) and a loader that
returns its official train and test parts as `ImageSet`s. The framework carves a validation split
from train (fixed, stratified, independent of the model seed) so that model selection never reads
the test split. Splits used downstream: `train` (train minus val), `val`, `test`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
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
    # The default training recipe of its originals and Oracles (the Oracle uses the original's recipe on
    # the retain data, so the gap to it measures unlearning, not a different budget): name, pretrained
    # (ImageNet weights), epochs, patience (early stop on val accuracy, None = off), bsize, lr, momentum,
    # wd, label_smoothing, scheduler, stem ('small' 3x3 or 'imagenet' 7x7 ResNet stem), num_workers, and
    # augment per backbone family: crop (RandomCrop padding as a fraction of the input size, 0 = none) and
    # rotate (degrees); horizontal flips follow `flip`.
    train_recipe: dict
    img_size: dict[str, int]  # input resolution per backbone family ("resnet", "transformer")
    forget_classes: tuple[int, ...]  # the classes forgotten "each in turn"
    multi_k: tuple[int, ...]  # multi-class forgetting: the k values run when --num_forget_classes is unset
    hr_samples: int  # HR mode: random training samples forgotten
    recipes: dict[str, dict] = field(default_factory=dict)  # other named recipes (--recipe), complete like train_recipe

    def recipe_names(self) -> list[str]:
        return [self.train_recipe["name"], *self.recipes]

    def recipe(self, name: str | None = None) -> dict:
        """The named training recipe (None: the default one)."""
        if name is None or name == self.train_recipe["name"]:
            return self.train_recipe
        if name not in self.recipes:
            from core.runtime import UserError
            raise UserError(f"{self.name} has no recipe {name!r}; valid: {', '.join(self.recipe_names())}")
        return self.recipes[name]


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


def recipe_names() -> list[str]:
    """Every recipe name of every data set (the choices of --recipe)."""
    return list(dict.fromkeys(n for d in list_datasets() for n in get_info(d).recipe_names()))


def describe_recipe(info: DatasetInfo, name: str | None = None) -> str:
    """One line saying what a recipe trains with: for --help, the README and the stages' first line."""
    r = info.recipe(name)
    stop = f" (early stop after {r['patience']} epochs without val improvement)" if r.get("patience") else ""
    ms = r["scheduler"]
    sched = ms[0] if ms[0] in ("cosine", "none") else f"lr x0.1 every {ms[0]} epochs" \
        if ms == list(range(ms[0], ms[0] * (len(ms) + 1), ms[0])) else "lr x0.1 at epochs " + " ".join(map(str, ms))

    def aug(family: str) -> str:
        a = r["augment"][family]
        parts = [f"crop {a['crop'] * info.img_size[family]:g} px"] if a["crop"] else []
        parts += ["flip"] if info.flip else []
        parts += [f"rotate {a['rotate']} deg"] if a.get("rotate") else []
        return " + ".join(parts) or "none"
    return (f"{'ImageNet-pretrained' if r['pretrained'] else 'from scratch'}, {r['epochs']} epochs{stop}, batch "
            f"{r['bsize']}, SGD lr {r['lr']:g} momentum {r['momentum']:g} wd {r['wd']:g}, label smoothing "
            f"{r['label_smoothing']:g}, {sched}, {r['stem']} stem; {info.img_size['resnet']} px (ViT/Swin "
            f"{info.img_size['transformer']}); augmentation {aug('resnet')} (ViT/Swin: {aug('transformer')})")


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


def per_class_sample(targets: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Sorted indices of at most `k` samples of every class (all of a smaller class), drawn with `seed`:
    the seed's SAMPLES_PER_CLASS applied to real data."""
    rng = np.random.default_rng(seed)
    t = targets.cpu().numpy()
    keep = [rng.permutation(np.flatnonzero(t == c))[:k] for c in np.unique(t)]
    return torch.as_tensor(np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64))


def load_splits(name: str, data_root: str | Path, val_fraction: float) -> dict[str, ImageSet]:
    """The three splits of a data set; `val` is carved from the official train part."""
    info = get_info(name)
    train, test = info.load(Path(data_root))
    keep, val = stratified_split(train.targets, val_fraction, VAL_SEED)
    return {"train": train.subset(keep), "val": train.subset(val), "test": test}


DEFAULT_AUGMENT = {"crop": 0.125, "rotate": 0}


def make_transform(info: DatasetInfo, img_size: int, train: bool, augment: dict | None = None) -> v2.Compose:
    """Training: the recipe's augmentation (`augment`: pad-crop by a fraction of the size, rotation; default
    a 1/8 pad-crop), flips where they keep labels; resize + normalise for both."""
    aug = augment or DEFAULT_AUGMENT
    ops: list = []
    if img_size != info.native_size:
        ops.append(v2.Resize((img_size, img_size), antialias=True))
    if train:
        if aug["crop"]:
            ops.append(v2.RandomCrop(img_size, padding=max(1, int(aug["crop"] * img_size))))
        if info.flip:
            ops.append(v2.RandomHorizontalFlip())
        if aug.get("rotate"):
            ops.append(v2.RandomRotation(aug["rotate"]))
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


def make_dataset(name: str, images: ImageSet, img_size: int, train: bool, augment: dict | None = None) -> TorchDataset:
    return TorchDataset(images, make_transform(get_info(name), img_size, train, augment))

