"""scikit-learn's handwritten digits: 1,797 real 8×8 images, 10 classes, shipped with scikit-learn.

The official test part is a fixed stratified 25% of the images (seed 0); grey levels 0..16 become
uint8 and are replicated to three channels so every backbone takes them unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch

from data import DatasetInfo, ImageSet, register_dataset, stratified_split

TEST_FRACTION, TEST_SEED = 0.25, 0


def load(_root: Path) -> tuple[ImageSet, ImageSet]:
    from sklearn.datasets import load_digits
    d = load_digits()
    img = torch.as_tensor(d.images * 255.0 / 16.0).round().to(torch.uint8)[:, None].expand(-1, 3, -1, -1)
    full = ImageSet(img.contiguous(), torch.as_tensor(d.target, dtype=torch.long))
    train, test = stratified_split(full.targets, TEST_FRACTION, TEST_SEED)
    return full.subset(train), full.subset(test)


register_dataset(DatasetInfo(
    name="digits", num_classes=10, native_size=8, mean=(0.3053,) * 3, std=(0.3759,) * 3, flip=False,
    load=load, where="ships inside scikit-learn (pip install scikit-learn)",
    # tuned to train a ResNet-18 to about 98% test accuracy in about a minute on two CPU cores
    train_recipe=dict(name="digits", pretrained=False, epochs=6, patience=None, bsize=64, lr=0.05, momentum=0.9,
                      wd=5e-4, label_smoothing=0.1, scheduler=["cosine"], stem="small", num_workers=0,
                      augment={"resnet": dict(crop=0.125, rotate=0), "transformer": dict(crop=0.125, rotate=0)}),
    img_size={"resnet": 16, "transformer": 32},  # 32 keeps ViT/Swin runnable on a CPU
    forget_classes=tuple(range(10)), multi_k=(2, 5), hr_samples=100))
