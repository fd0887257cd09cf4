"""Model zoo: a registry of backbones, each built as a `CutNet` (`models/cutnet.py`) exposing the
fc/partial/full cuts.

    net = create_model("resnet18", num_classes=10, stem="small", img_size=16)
    z = net.features_at(x, "partial"); logits = net.tail("partial")(z)
Adding a backbone: a module whose builder is decorated with `@register_model(name, family)` and
returns a CutNet, and its name in `MODULES` below (imported on the first lookup). Besides the
registered names, `timm:<name>` builds any model timm knows (`models/timm_zoo.py`), without listing
timm here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.runtime import UserError

if TYPE_CHECKING:
    from models.cutnet import CutNet

_MODELS: dict[str, Callable[..., CutNet]] = {}
_FAMILY: dict[str, str] = {}  # "resnet" or "transformer": picks the default image size
MODULES = ("resnet", "vit", "swin")  # registration order = listing order
TIMM = "timm:"  # prefix of any timm model name: --model timm:convnext_atto


def _load() -> None:
    for m in MODULES:
        importlib.import_module(f"models.{m}")


def register_model(name: str, family: str):
    def deco(fn: Callable[..., CutNet]) -> Callable[..., CutNet]:
        _MODELS[name] = fn
        _FAMILY[name] = family
        return fn
    return deco


def list_models() -> list[str]:
    """The registered backbones (timm's are not listed: any `timm:<name>` works)."""
    _load()
    return list(_MODELS)


def model_error(name: str) -> str | None:
    """None for a valid --model, else one line naming the choices (and timm's closest names)."""
    _load()
    if name in _MODELS:
        return None
    from models import timm_zoo
    if name.startswith(TIMM):
        err = timm_zoo.timm_name_error(name[len(TIMM):])
        return err and f"invalid choice: {name!r}: {err}"
    also = f"; timm has {name!r}: use {TIMM}{name}" if timm_zoo.timm_name_error(name) is None else ""
    return (f"invalid choice: {name!r} (choose from {', '.join(map(repr, _MODELS))}, or "
            f"'{TIMM}<name>' for any timm model{also})")


def model_family(name: str) -> str:
    """'resnet' or 'transformer': which of a data set's default input sizes the backbone takes. timm
    models take the 'transformer' one (the ImageNet-style size; 32 on digits): their stems (stride 32)
    or patch embeddings are made for it, not for the small inputs of the CIFAR-stem ResNets."""
    if name.startswith(TIMM):
        return "transformer"
    _load()
    return _FAMILY[name]


def create_model(name: str, num_classes: int, stem: str = "small", img_size: int = 32,
                 pretrained: bool = False) -> CutNet:
    """Build a backbone. `stem` matters for the seed ResNets: 'imagenet' (7×7/2 + max-pool) or
    'small' (3×3/1, no max-pool); timm models keep their own stem."""
    _load()
    if name.startswith(TIMM):
        from models import timm_zoo
        err = timm_zoo.timm_name_error(name[len(TIMM):])
        if err:
            raise UserError(f"unknown model {name!r}: {err}")
        return timm_zoo.build(name[len(TIMM):], num_classes, img_size, pretrained)
    if name not in _MODELS:
        raise UserError(f"unknown model {name!r}; valid: {', '.join(_MODELS)}, {TIMM}<any timm model>")
    return _MODELS[name](num_classes=num_classes, stem=stem, img_size=img_size, pretrained=pretrained)


def load_pretrained(weights, name: str) -> dict:
    """ImageNet weights from the torch hub cache (or the network); a clear error offline."""
    import torch.hub
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as e:  # URLError, HTTPError, OSError: no network and no cached file
        fname = weights.url.rsplit("/", 1)[-1]
        raise UserError(f"--pretrained: ImageNet weights for {name} are not in {torch.hub.get_dir()}/checkpoints "
                        f"and could not be downloaded ({type(e).__name__}); copy {fname} there from a machine "
                        f"with internet access ({weights.url}), or drop --pretrained") from None


__all__ = ["TIMM", "create_model", "list_models", "load_pretrained", "model_error", "model_family", "register_model"]
