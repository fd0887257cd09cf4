"""Any timm model by name (`--model timm:<name>`), cut where this project cuts, through timm's own interface.

Every timm classifier computes `forward_head(forward_features(x))`. With timm's classifier removed
(`num_classes=0`) and ours in its place, the CutNet parts are
    trunk       forward_features up to the input of the last block
    last_block  the last block of the last stage, the first of these that exists:
                stages[-1].blocks[-1], layers[-1].blocks[-1], blocks[-1][-1], blocks[-1], stages[-1][-1],
                layers[-1][-1], layer4[-1] (ConvNeXt and most hierarchical nets, Swin, EfficientNet/MobileNet,
                ViT/DeiT/EVA, ..., ResNet)
    pool        what forward_features applies after that block (final norm, head conv), then
                forward_head(x, pre_logits=True) (pooling, norm, flatten, any pre-logits layer)
    head        make_head(width of the pooled features, num_classes)
Trunk and pool run timm's own forward code: the trunk is the model with the last block and the modules
after it taken out, the pool a shallow copy of the model that keeps only the modules forward_head uses;
no parameter belongs to two parts. The split is checked at build time on one random image against
the untouched model (torch.equal); a model whose last block cannot be taken out that way (its stage
does more after it, or it has no list of blocks) keeps the fc and full cuts and refuses the partial
one with a one-line error.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from core.runtime import UserError
from models.cutnet import CutNet, make_head

# Where the last block sits, tried in order: attribute names and list indices from the model down.
BLOCK_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("stages", -1, "blocks", -1), ("layers", -1, "blocks", -1), ("blocks", -1, -1), ("blocks", -1),
    ("stages", -1, -1), ("layers", -1, -1), ("layer4", -1))
_LISTS = (nn.Sequential, nn.ModuleList)
_MODULE_STATE = [k for k, v in vars(nn.Module()).items() if isinstance(v, (dict, set))]


class Features(nn.Module):
    """`model.forward_features`: with the last block and the modules after it taken out, the trunk."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


class PreLogits(nn.Module):
    """The modules forward_features applies after the last block, then `forward_head(pre_logits=True)`
    of a shallow copy of the model holding only the modules that forward_head uses."""

    def __init__(self, after: list[nn.Module], head_part: nn.Module):
        super().__init__()
        self.after, self.head_part = nn.Sequential(*after), head_part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_part.forward_head(self.after(x), pre_logits=True)


def timm_name_error(name: str) -> str | None:
    """None if timm knows `name` (an architecture, optionally with one of its pretrained tags), else a
    message naming timm's closest names."""
    import timm
    arch, _, tag = name.partition(".")
    known = timm.is_model(arch)
    tagged = timm.list_pretrained(f"{arch}.*") if known and tag else []
    if known and (not tag or name in tagged):
        return None
    close = difflib.get_close_matches(name, tagged or timm.list_models(), n=4, cutoff=0.6)
    return f"timm has no model {name!r}; " + (f"close: {', '.join('timm:' + c for c in close)}" if close
                                              else "timm.list_models() lists them")


def create_timm(name: str, img_size: int, **kw) -> nn.Module:
    """timm.create_model with `img_size` for the models whose size is fixed at build (ViTs, Swin, ...)."""
    import timm
    try:
        return timm.create_model(name, num_classes=0, img_size=img_size, **kw)
    except TypeError as e:  # a CNN's constructor takes no img_size: it runs at any size
        if "img_size" not in str(e):
            raise
    return timm.create_model(name, num_classes=0, **kw)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache timm reads, as the environment says now (HF_HUB_CACHE, HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser() / "hub"


def cached_weights(name: str) -> Path:
    """The file of `name`'s pretrained weights in the Hugging Face cache; a one-line error when it is not
    there (nothing is downloaded at run time)."""
    from huggingface_hub import try_to_load_from_cache
    from timm.models import get_pretrained_cfg
    cfg = get_pretrained_cfg(name)
    repo = cfg.hf_hub_id if cfg is not None else None
    if not repo:
        raise UserError(f"--pretrained: timm has no pretrained weights for {name!r} on the Hugging Face hub; drop --pretrained")
    cache = hf_cache_dir()
    for fname in ([cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]):
        hit = try_to_load_from_cache(repo, fname, cache_dir=cache)
        if isinstance(hit, str):
            return Path(hit)
    fetch = f"python -c \"import timm; timm.create_model('{repo.split('/', 1)[1]}', pretrained=True)\""
    raise UserError(f"--pretrained: weights of timm:{name} ({repo}) are not in the Hugging Face cache {cache}; on a "
                    f"machine with internet run {fetch} and copy its ~/.cache/huggingface/hub/models--"
                    f"{repo.replace('/', '--')} into {cache} (or set HF_HOME), or drop --pretrained")


def _find(model: nn.Module, path: tuple[str | int, ...]) -> tuple[nn.Module, str, nn.Module] | None:
    """(list whose last entry is the last block, its key in its parent, the parent) for one BLOCK_PATHS
    entry, or None where the model has no such list or its last entry is a single layer, not a block."""
    parent, key, obj = None, "", model
    for step in path[:-1]:
        if isinstance(step, int):
            if type(obj) not in _LISTS or len(obj) == 0:
                return None
            key = list(obj._modules)[step]
        else:
            key = step
        parent, obj = obj, obj._modules.get(key)
        if obj is None:
            return None
    if type(obj) not in _LISTS or len(obj) == 0 or next(obj[-1].children(), None) is None:
        return None
    return obj, key, parent


def _calls(model: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
           lasts: list[nn.Module]) -> tuple[list, torch.Tensor]:
    """fn(x), and which of the model's top-level modules it ran in which order: one entry per run of
    calls inside one top-level module (lists that are iterated rather than called count too), and
    ('last', i) where lasts[i] returned."""
    seen: list = []

    def note(entry) -> None:
        if not seen or seen[-1] != entry:
            seen.append(entry)

    hooks = [m.register_forward_pre_hook(lambda *_, n=n: note(n)) for n, top in model.named_children()
             for m in top.modules()]
    hooks += [b.register_forward_hook(lambda *_, i=i: note(("last", i))) for i, b in enumerate(lasts)]
    try:
        out = fn(x)
    finally:
        for h in hooks:
            h.remove()
    return seen, out


def _after(seen: list, i: int) -> list[str] | None:
    """The top-level modules forward_features runs after candidate i's last block, if they form a chain
    that runs once each and only there; else None."""
    if seen.count(("last", i)) != 1:
        return None
    at = seen.index(("last", i))
    after = [n for n in seen[at + 1:] if isinstance(n, str)]
    if len(set(after)) != len(after) or set(after) & set(seen[:at]):
        return None
    return after


def _equal(fn: Callable[[], torch.Tensor], ref: torch.Tensor) -> bool:
    try:
        return torch.equal(fn(), ref)
    except Exception:  # the block needs more than one input, a list is iterated, ...: not this split
        return False


def _head_part(model: nn.Module, names: set[str]) -> nn.Module:
    """A shallow copy of `model` (same class, code and settings) owning only the modules `names`, which
    leave `model`: forward_head runs on it."""
    part = copy.copy(model)
    for k in _MODULE_STATE:  # its own registries (modules, parameters, buffers, hooks), not the model's
        part.__dict__[k] = type(model.__dict__[k])()
    for n in names:
        part._modules[n] = model._modules.pop(n)
    return part


def _cut(model: nn.Module, name: str, img_size: int) -> tuple[nn.Module, nn.Module | None, nn.Module, int]:
    """(trunk, last block or None, pool, width of the pooled features), checked against the model."""
    x = torch.randn(1, 3, img_size, img_size, generator=torch.Generator().manual_seed(0))
    found = [f for f in (_find(model, p) for p in BLOCK_PATHS) if f is not None]
    training = model.training
    model.eval()
    with torch.no_grad():
        try:
            seen, feats = _calls(model, model.forward_features, x, [f[0][-1] for f in found])
            seen_head, ref = _calls(model, lambda f: model.forward_head(f, pre_logits=True), feats, [])
        except Exception as e:  # too small an input for its strides, windows or patches
            msg = str(e).splitlines()[0] if str(e) else ""
            raise UserError(f"timm:{name} does not run on {img_size}x{img_size} images ({type(e).__name__}: {msg}); "
                            f"use a larger --img_size") from None
        head_part = _head_part(model, set(seen_head) - set(seen))
        cut = None
        for i, (blocks, key, parent) in enumerate(found):
            after = _after(seen, i)
            if after is None:
                continue
            last, after_mods = blocks[-1], [model._modules[n] for n in after]
            parent._modules[key] = blocks[:-1]
            for n in after:
                model._modules[n] = nn.Identity()
            pool = PreLogits(after_mods, head_part)
            if _equal(lambda p=pool, b=last: p(b(model.forward_features(x))), ref):
                cut = (last, pool)
                break
            parent._modules[key] = blocks  # undo, try the next place
            model._modules.update(zip(after, after_mods))
        if cut is None:
            cut = (None, PreLogits([], head_part))
            if not _equal(lambda: cut[1](model.forward_features(x)), ref):
                raise UserError(f"timm:{name}: forward_head needs more than forward_features' output; "
                                "this model cannot be cut")
    for part in (model, *cut):
        if part is not None:
            part.train(training)
    return Features(model), cut[0], cut[1], ref.shape[1]


def build(name: str, num_classes: int, img_size: int, pretrained: bool = False) -> CutNet:
    """timm's `name` as a CutNet with our head; `pretrained`: timm's weights from the local cache."""
    kw = dict(pretrained=True, pretrained_cfg_overlay=dict(file=str(cached_weights(name)))) if pretrained else {}
    trunk, last, pool, width = _cut(create_timm(name, img_size, **kw), name, img_size)
    if last is not None:
        return CutNet(trunk, last, pool, make_head(width, num_classes))
    why = (f"timm:{name} has no partial cut (no block at the end of forward_features that runs on its own); "
           "use the fc or full setting (create_embeddings.py --cuts fc)")
    return CutNet(trunk, nn.Identity(), pool, make_head(width, num_classes), no_partial=why)
