"""Swin-T from torchvision, cut before the last block of the last stage (tail: block + norm + head)."""

from __future__ import annotations

import torchvision
from torch import nn
from torchvision.ops.misc import Permute

from models import load_pretrained, register_model
from models.cutnet import CutNet, make_head


@register_model("swint", family="transformer")
def swin_t(num_classes: int, stem: str = "small", img_size: int = 224, pretrained: bool = False) -> CutNet:
    net = torchvision.models.swin_t()
    if pretrained:
        net.load_state_dict(load_pretrained(torchvision.models.Swin_T_Weights.IMAGENET1K_V1, "Swin-T"))
    stages = list(net.features)
    trunk = nn.Sequential(*stages[:-1], stages[-1][:-1])
    pool = nn.Sequential(net.norm, Permute([0, 3, 1, 2]), net.avgpool, nn.Flatten(1))
    return CutNet(trunk, stages[-1][-1], pool, make_head(net.head.in_features, num_classes))
