"""Surrogate images for SCAR's distillation in the full setting: out-of-distribution inputs, so that
no retain data is needed (seed B's `--surrogate_dataset`, `--surrogate_quantity`).

    noise          Gaussian-noise images (seed B's option; needs nothing)
    sample_images  patches of scikit-learn's two bundled photographs (`load_sample_images`: a
                   Chinese temple and a flower) at three scales, randomly flipped: natural-image
                   statistics with no download; the default for `digits`
    cifar10/cifar100/TinyImageNet
                   another data set's train images from --data_root (for CIFAR-10 use CIFAR-100 and
                   vice versa, as the SCAR paper does); the default for CIFAR and TinyImageNet, an
                   error naming the folder when absent (no quiet fall-back to noise)
    retain         the real retain images (an ablation: not retain-free, labelled as such in the CSV)
Every surrogate is drawn with --seed, resized to --img_size and normalised with the *target* data
set's statistics, since it is fed to the target model. Labels are -1 (unknown).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from core import paths
from core.feeds import Feed, ImageFeed, TensorFeed
from core.runtime import UserError
from data import get_info, make_transform

PATCH_SIZES = (24, 48, 96)  # pixels of the 427×640 photographs cut into patches
OTHER = {"cifar10": "cifar100", "cifar100": "cifar10", "TinyImageNet": "cifar100"}
FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "TinyImageNet": "tiny-imagenet-200"}
SURROGATE_CHOICES = ("noise", "sample_images", "cifar10", "cifar100", "TinyImageNet", "retain")


def default_surrogate(dataset: str, data_root: str) -> str:
    """`sample_images` for digits; the other CIFAR for CIFAR/TinyImageNet (the SCAR paper's choice). When
    its files are not under --data_root this is an error, not a quiet fall-back to noise (the SCAR paper's
    failing case): noise is only used when --surrogate_dataset noise asks for it."""
    if dataset == "digits":
        return "sample_images"
    other = OTHER.get(dataset)
    if other is None:
        raise UserError(f"--surrogate_dataset unset and {dataset} has no default surrogate data set; choose one: "
                        f"{', '.join(SURROGATE_CHOICES)}")
    folder = Path(data_root) / FOLDERS[other]
    if folder.is_dir():
        return other
    raise UserError(f"--surrogate_dataset unset: SCAR distils on {other} train images (the SCAR paper's choice for "
                    f"{dataset}), expected in {folder} (not found); get them from {get_info(other).where}, or choose on "
                    f"purpose: --surrogate_dataset noise (Gaussian noise, the failing case of SCAR's paper), "
                    f"sample_images (no download) or retain (not retain-free)")


def sample_image_patches(n: int, generator: torch.Generator) -> torch.Tensor:
    """`n` uint8 patches (n×3×S×S, S = smallest patch size) cut from scikit-learn's sample photographs."""
    from sklearn.datasets import load_sample_images
    photos = [torch.tensor(im).permute(2, 0, 1).float() for im in load_sample_images().images]
    s = PATCH_SIZES[0]
    pool = []
    for p in PATCH_SIZES:
        for im in photos:
            tiles = im.unfold(1, p, p // 2).unfold(2, p, p // 2)  # 3×h×w×p×p
            tiles = tiles.permute(1, 2, 0, 3, 4).reshape(-1, 3, p, p)
            pool.append(F.interpolate(tiles, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
                        if p != s else tiles)
    pool = torch.cat(pool)
    pick = torch.randint(len(pool), (n,), generator=generator)
    x = pool[pick]
    flip = torch.rand(n, generator=generator) < 0.5
    x[flip] = x[flip].flip(-1)
    return x.round().clamp(0, 255).to(torch.uint8)


def surrogate_feed(kind: str, n: int, dataset: str, img_size: int, device: torch.device, *, seed: int = 0,
                   data_root: str | Path = paths.DEFAULT_DATA, num_workers: int = 0, retain: Feed | None = None) -> Feed:
    """The surrogate stream: `n` images of `kind` (see the module docstring), drawn with `seed`, resized to
    `img_size` and normalised for the target data set `dataset`."""
    g = torch.Generator().manual_seed(seed)
    info = get_info(dataset)
    unknown = torch.full((n,), -1, dtype=torch.long)
    if kind == "noise":
        x = torch.randn(n, 3, img_size, img_size, generator=g)
        return TensorFeed(x.to(device), unknown.to(device))
    if kind == "retain":
        if retain is None:
            raise UserError("--surrogate_dataset retain needs the real retain set")
        return retain
    if kind == "sample_images":
        x = make_transform(info, img_size, train=False)(_resized(sample_image_patches(n, g), img_size))
        return TensorFeed(x.to(device), unknown.to(device))
    if kind == dataset:
        raise UserError(f"--surrogate_dataset {kind}: that is the data set being unlearned, not out-of-distribution "
                        f"data; choose another (valid: {', '.join(SURROGATE_CHOICES)})")
    try:
        other = get_info(kind)
    except UserError:
        raise UserError(f"--surrogate_dataset {kind}: unknown; valid: {', '.join(SURROGATE_CHOICES)}") from None
    train, _ = other.load(Path(data_root))
    pick = torch.randperm(len(train), generator=g)[:n]
    if len(pick) < n:
        pick = torch.cat([pick, torch.randint(len(train), (n - len(pick),), generator=g)])
    imgs = train.subset(pick)
    tf = make_transform(info, img_size, train=False)
    if isinstance(imgs.images, torch.Tensor):
        x = tf(_resized(imgs.images, img_size))
        return TensorFeed(x.to(device), unknown.to(device))
    from data import TorchDataset  # image files (TinyImageNet): decoded batch by batch
    return ImageFeed(TorchDataset(imgs, lambda im: tf(_resized(im, img_size))), unknown, device, num_workers)


def _resized(x: torch.Tensor, img_size: int) -> torch.Tensor:
    """Bring uint8 images to `img_size` (the target transform resizes only from its native size)."""
    if x.shape[-1] == img_size and x.shape[-2] == img_size:
        return x
    from torchvision.transforms import v2
    return v2.functional.resize(x, [img_size, img_size], antialias=True)
