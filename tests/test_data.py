"""Data sets, transforms and forget splits, through the real loaders."""

from __future__ import annotations

import json

import pytest
import torch
from fakedata import write_cifar, write_tiny

from core import paths
from core.runtime import UserError
from data import get_info, load_splits, make_dataset
from data.forget import class_permutation, load_hr, multi, sample_hr, single


def test_digits_fixed_stratified_splits():
    a = load_splits("digits", "unused", 0.1)
    b = load_splits("digits", "unused", 0.1)
    assert [len(a[s]) for s in ("train", "val", "test")] == [1211, 136, 450]
    assert sum(len(a[s]) for s in a) == 1797
    for s in a:  # fixed: the same images every time
        assert torch.equal(a[s].images, b[s].images) and torch.equal(a[s].targets, b[s].targets)
    for s in a:  # stratified: every class present in every split in similar proportion
        counts = torch.bincount(a[s].targets, minlength=10).float()
        assert counts.min() > 0 and counts.max() / counts.min() < 1.3
    assert a["train"].images.dtype == torch.uint8 and a["train"].images.shape[1:] == (3, 8, 8)


def test_transforms_augment_train_only_and_resize():
    sp = load_splits("digits", "unused", 0.1)
    train = make_dataset("digits", sp["train"], 16, train=True)
    test = make_dataset("digits", sp["test"], 16, train=False)
    x0, _ = test[0]
    assert x0.shape == (3, 16, 16) and x0.dtype == torch.float32
    assert torch.equal(test[0][0], test[0][0])  # evaluation: deterministic
    torch.manual_seed(0)
    views = torch.stack([train[0][0] for _ in range(8)])
    assert (views - views[0]).abs().amax() > 0  # training: random crops
    assert make_dataset("digits", sp["test"], 32, train=False)[0][0].shape == (3, 32, 32)  # resize (ViT/Swin)


@pytest.mark.parametrize("kind,n_cls", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_pickles_load_through_torchvision(tmp_path, kind, n_cls):
    write_cifar(tmp_path, kind, per_batch=20, n_test=20)
    sp = load_splits(kind, tmp_path, 0.1)
    assert len(sp["train"]) + len(sp["val"]) == 100 and len(sp["test"]) == 20
    assert sp["train"].images.shape[1:] == (3, 32, 32) and sp["train"].images.dtype == torch.uint8
    assert int(sp["train"].targets.max()) < n_cls
    x, y = make_dataset(kind, sp["test"], 32, train=False)[3]
    assert x.shape == (3, 32, 32) and y == 3 % n_cls


def test_tinyimagenet_folder_layout(tmp_path):
    write_tiny(tmp_path, n_classes=3, per_class=4, n_val=6)
    sp = load_splits("TinyImageNet", tmp_path, 0.25)
    assert len(sp["train"]) + len(sp["val"]) == 12 and len(sp["test"]) == 6
    assert sp["test"].targets.tolist() == [0, 1, 2, 0, 1, 2]
    x, _ = make_dataset("TinyImageNet", sp["train"], 64, train=True)[0]
    assert x.shape == (3, 64, 64)


@pytest.mark.parametrize("name,needle", [("cifar10", "cifar-10-python.tar.gz"), ("cifar100", "cifar-100"),
                                         ("TinyImageNet", "tiny-imagenet-200.zip")])
def test_missing_dataset_says_where_and_how(tmp_path, name, needle):
    with pytest.raises(UserError) as e:
        load_splits(name, tmp_path / "nothing", 0.1)
    msg = str(e.value)
    assert str(tmp_path / "nothing") in msg and needle in msg and "\n" not in msg


def test_forget_sets(tmp_path):
    root = str(tmp_path)
    y = torch.tensor([0, 3, 3, 5, 1])
    assert single(3).mask("test", y).tolist() == [False, True, True, False, False]
    m = multi(root, "cifar100", 100, 10)
    perm = json.loads(paths.forget_set_file(root, "cifar100", "class_permutation").read_text())["permutation"]
    assert sorted(perm) == list(range(100)) and m.classes == tuple(sorted(perm[:10]))
    assert multi(root, "cifar100", 100, 10) == m  # recorded: the same classes next time
    assert class_permutation(root, "cifar100", 100) == perm
    h = sample_hr(root, "digits", 1211, 100, seed=3)
    assert len(set(h.samples)) == 100 and max(h.samples) < 1211
    assert load_hr(root, "digits", 100, 3, 1211) == h and sample_hr(root, "digits", 1211, 100, seed=3) == h
    assert sample_hr(root, "digits", 1211, 100, seed=4) != h
    mask = h.mask("train", torch.zeros(1211, dtype=torch.long))
    assert int(mask.sum()) == 100 and not h.mask("test", torch.zeros(450, dtype=torch.long)).any()
    with pytest.raises(UserError, match="sample_fgt_samples.py"):
        load_hr(root, "digits", 100, 9)


def test_dataset_registry_errors():
    with pytest.raises(UserError, match="valid: digits, cifar10, cifar100, TinyImageNet"):
        get_info("mnist")
