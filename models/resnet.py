"""ResNet-18/50 from torchvision, cut before the last residual block of layer4."""

from __future__ import annotations

import torchvision
from torch import nn

from models import load_pretrained, register_model
from models.cutnet import CutNet, make_head


def _resnet(arch: str, weights_enum, num_classes: int, stem: str, pretrained: bool) -> CutNet:
    net = getattr(torchvision.models, arch)()
    if pretrained:
        net.load_state_dict(load_pretrained(weights_enum.IMAGENET1K_V1, arch))
    if stem == "small":  # CIFAR-style stem (seed A for CIFAR-100/TinyImageNet; digits)
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif stem != "imagenet":
        raise ValueError(f"unknown stem {stem!r}; valid: small, imagenet")
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
                          net.layer4[:-1])
    pool = nn.Sequential(net.avgpool, nn.Flatten(1))
    before = net.layer4[-2]  # the block whose output is the partial cut's input
    bn = "bn3" if hasattr(before, "bn3") else "bn2"  # Bottleneck / BasicBlock
    return CutNet(trunk, net.layer4[-1], pool, make_head(net.fc.in_features, num_classes),
                  partial_bn=f"trunk.7.{len(net.layer4) - 2}.{bn}")


@register_model("resnet18", family="resnet")
def resnet18(num_classes: int, stem: str = "small", img_size: int = 32, pretrained: bool = False) -> CutNet:
    return _resnet("resnet18", torchvision.models.ResNet18_Weights, num_classes, stem, pretrained)


@register_model("resnet50", family="resnet")
def resnet50(num_classes: int, stem: str = "small", img_size: int = 32, pretrained: bool = False) -> CutNet:
    return _resnet("resnet50", torchvision.models.ResNet50_Weights, num_classes, stem, pretrained)
