"""What the stage scripts share: the original/oracle network description, loading inputs from the
runs tree (with the stage to run first when one is missing), forget sets and image feeds."""

from __future__ import annotations

import argparse
import functools

import torch

from core import paths
from core.feeds import ImageFeed, TensorFeed
from core.runtime import UserError
from core.storage import load_checkpoint
from data import ImageSet, describe_recipe, get_info, load_splits, make_dataset
from data.forget import ForgetSet, hr_seeds, load_hr, multi, single
from engine.training import TrainRecipe, load_net
from models import create_model, model_family


def net_meta(args: argparse.Namespace, forget_tag: str = "none") -> dict:
    """What a checkpoint must match: refused on load when any of these differ."""
    return dict(dataset=args.dataset, model=args.model, num_classes=args.num_classes, img_size=args.img_size,
                stem=args.stem, forget_tag=forget_tag)


def train_recipe(args: argparse.Namespace) -> TrainRecipe:
    """The training recipe of originals and Oracles, as the options give it."""
    return TrainRecipe(**{f: getattr(args, f) for f in TrainRecipe.__dataclass_fields__})


def recipe_line(args: argparse.Namespace) -> str:
    """What the training stage is about to do, in one line: the recipe and every flag that changes it."""
    info = get_info(args.dataset)
    r = info.recipe(args.recipe)
    changed = [f"--{k} {getattr(args, k)}" for k in ("epochs", "patience", "bsize", "lr", "momentum", "wd",
                                                      "label_smoothing", "scheduler", "pretrained")
               if k in r and getattr(args, k) != r[k]]
    if args.img_size != info.img_size[model_family(args.model)]:
        changed.append(f"--img_size {args.img_size}")
    others = [n for n in info.recipe_names() if n != r["name"]]
    return (f"recipe {r['name']} for {args.dataset} {args.model}: {describe_recipe(info, r['name'])}"
            + (f"; changed by {', '.join(changed)}" if changed else "")
            + (f" (other recipes: --recipe {' '.join(others)})" if others else ""))


def new_model(args: argparse.Namespace):
    """A fresh network for training, from ImageNet weights when the recipe or --pretrained says so: missing
    weights stop it with one line naming the cache folder, where to fetch them, and --no-pretrained."""
    try:
        return create_model(args.model, args.num_classes, args.stem, args.img_size, args.pretrained)
    except UserError as e:
        msg = str(e)
        if not (args.pretrained and msg.startswith("--pretrained")):
            raise
        why = f"the {args.recipe} recipe of {args.dataset} starts from ImageNet weights" if args.recipe else ""
        msg = msg.replace("or drop --pretrained", "or pass --no-pretrained to train from scratch")
        raise UserError(msg + (f" ({why})" if why else "")) from None


def seed_of(args: argparse.Namespace, n: int) -> int:
    """Original/oracle m<n> is trained with seed + n: independent, reproducible originals."""
    return args.seed + n


@functools.lru_cache(maxsize=4)
def _splits(dataset: str, data_root: str, val_fraction: float) -> dict[str, ImageSet]:
    return load_splits(dataset, data_root, val_fraction)


def splits(args: argparse.Namespace) -> dict[str, ImageSet]:
    return _splits(args.dataset, str(args.data_root), args.val_fraction)


def image_feed(args: argparse.Namespace, split: str, device: torch.device, images: ImageSet | None = None) -> ImageFeed:
    """Evaluation-transformed images of a split (no augmentation) as a feed."""
    imgs = images if images is not None else splits(args)[split]
    return ImageFeed(make_dataset(args.dataset, imgs, args.img_size, train=False), imgs.targets, device,
                     args.num_workers)


def train_cmd(args: argparse.Namespace) -> str:
    return f"python training_original.py --dataset {args.dataset} --model {args.model} --n_model {args.n_model}"


def load_original(args: argparse.Namespace, n: int):
    ckpt = paths.original_ckpt(args.root, args.dataset, args.model, n)
    net, _ = load_net(ckpt, net_meta(args), missing_hint=f"run {train_cmd(args)} first")
    return net


def forget_sets(args: argparse.Namespace, n_train: int | None = None) -> list[ForgetSet]:
    """The forget sets an invocation covers: --forget_class, each listed class in turn, the first k
    of the permutation (multi), or the stored HR draw(s)."""
    if args.mode == "HR":  # --hr_seed, else every draw stored (sample_fgt_samples.py draws seeds 0..9)
        seeds = [args.hr_seed] if args.hr_seed is not None else hr_seeds(args.root, args.dataset, args.hr_samples)
        return [load_hr(args.root, args.dataset, args.hr_samples, s, n_train) for s in seeds or [0]]
    if args.forget_mode == "multi":
        ks = [args.num_forget_classes] if args.num_forget_classes else get_info(args.dataset).multi_k
        return [multi(args.root, args.dataset, args.num_classes, k) for k in ks]
    classes = [args.forget_class] if args.forget_class is not None else get_info(args.dataset).forget_classes
    return [single(c) for c in classes]


def load_embeddings(args: argparse.Namespace, n: int, cut: str, split: str, device: torch.device) -> TensorFeed:
    f = paths.embeddings_file(args.root, args.dataset, args.model, cut, n, split)
    hint = (f"run python create_embeddings.py --dataset {args.dataset} --model {args.model} "
            f"--n_model {n + 1} first")
    obj = load_checkpoint(f, expect={"dataset": args.dataset, "model": args.model, "cut": cut, "split": split,
                                     "img_size": args.img_size}, missing_hint=hint)
    if len(obj["x"]) != len(obj["y"]):
        raise UserError(f"{f}: {len(obj['x'])} inputs but {len(obj['y'])} labels; delete it and rerun "
                        f"create_embeddings.py")
    return TensorFeed(obj["x"].to(device), obj["y"].to(device))


__all__ = ["ForgetSet", "forget_sets", "image_feed", "load_embeddings", "load_original", "net_meta", "new_model",
           "recipe_line", "seed_of", "splits", "train_recipe"]
