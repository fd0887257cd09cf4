"""Model zoo: a registry of backbones, each built as a `CutNet` exposing the fc/partial/full cuts.

    net = create_model("resnet18", num_classes=10, stem="small", img_size=16)
    z = net.features_at(x, "partial"); logits = net.tail("partial")(z)
"""

from __future__ import annotations

from collections.abc import Callable

from core.runtime import UserError
from models.cutnet import CUTS, CutNet, Tail, make_head

_MODELS: dict[str, Callable[..., CutNet]] = {}
FAMILY: dict[str, str] = {}  # "resnet" or "transformer": picks the default image size


def register_model(name: str, family: str):
    def deco(fn: Callable[..., CutNet]) -> Callable[..., CutNet]:
        _MODELS[name] = fn
        FAMILY[name] = family
        return fn
    return deco


def list_models() -> list[str]:
    return list(_MODELS)


def create_model(name: str, num_classes: int, stem: str = "small", img_size: int = 32,
                 pretrained: bool = False) -> CutNet:
    """Build a registered backbone. `stem` matters for ResNets: 'imagenet' (7×7/2 + max-pool) or
    'small' (3×3/1, no max-pool)."""
    if name not in _MODELS:
        raise UserError(f"unknown model {name!r}; valid: {', '.join(_MODELS)}")
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


from models import resnet, vit, swin  # noqa: E402,F401,I001  (registers the backbones, in this order)

__all__ = ["CUTS", "CutNet", "Tail", "create_model", "list_models", "make_head", "register_model"]
