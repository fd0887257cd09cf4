"""ResNet-18/50 built with timm, cut before the last residual block of layer4.

timm's `resnet18`/`resnet50` are torchvision's networks module for module (same blocks, stride on the
3×3 conv, same parameter names), so the CutNet below has the state_dict keys that the torchvision
build had and loads checkpoints written before timm was used. Built with `zero_init_last=False`, the
initialisation is torchvision's (Kaiming-normal convs, BatchNorm weight 1), not timm's zeroed last
BatchNorm of each block. `--pretrained` loads torchvision's ImageNet weights (IMAGENET1K_V1) from the
torch hub cache, as before; timm's own ResNet weights are `--model timm:resnet18`.
"""

from __future__ import annotations

from torch import nn

from models import load_pretrained, register_model
from models.cutnet import CutNet, make_head


def _resnet(arch: str, num_classes: int, stem: str, pretrained: bool) -> CutNet:
    import timm
    import torchvision
    net = timm.create_model(arch, zero_init_last=False)
    if pretrained:
        weights = {"resnet18": torchvision.models.ResNet18_Weights, "resnet50": torchvision.models.ResNet50_Weights}[arch]
        net.load_state_dict(load_pretrained(weights.IMAGENET1K_V1, arch))
    if stem == "small":  # CIFAR-style stem (seed A for CIFAR-100/TinyImageNet; digits)
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif stem != "imagenet":
        raise ValueError(f"unknown stem {stem!r}; valid: small, imagenet")
    trunk = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool, net.layer1, net.layer2, net.layer3,
                          net.layer4[:-1])
    pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    before = net.layer4[-2]  # the block whose output is the partial cut's input
    bn = "bn3" if hasattr(before, "bn3") else "bn2"  # Bottleneck / BasicBlock
    return CutNet(trunk, net.layer4[-1], pool, make_head(net.num_features, num_classes),
                  partial_bn=f"trunk.7.{len(net.layer4) - 2}.{bn}")


@register_model("resnet18", family="resnet")
def resnet18(num_classes: int, stem: str = "small", img_size: int = 32, pretrained: bool = False) -> CutNet:
    return _resnet("resnet18", num_classes, stem, pretrained)


@register_model("resnet50", family="resnet")
def resnet50(num_classes: int, stem: str = "small", img_size: int = 32, pretrained: bool = False) -> CutNet:
    return _resnet("resnet50", num_classes, stem, pretrained)
