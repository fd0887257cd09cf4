"""ViT-B/16 from torchvision, cut before the last encoder block (tail: block + LayerNorm + head)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from core.runtime import UserError
from models import load_pretrained, register_model
from models.cutnet import CutNet, make_head


class PatchEmbed(nn.Module):
    """Patchify, prepend the class token, add position embeddings: images -> tokens N×(1+P)×D."""

    def __init__(self, vit: torchvision.models.VisionTransformer):
        super().__init__()
        self.conv_proj, self.class_token = vit.conv_proj, vit.class_token
        self.pos_embedding, self.dropout = vit.encoder.pos_embedding, vit.encoder.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)  # N×P×D, as torchvision's _process_input
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


class ClassToken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


@register_model("ViT", family="transformer")
def vit_b16(num_classes: int, stem: str = "small", img_size: int = 224, pretrained: bool = False) -> CutNet:
    if img_size % 16:
        raise UserError(f"--img_size {img_size}: ViT-B/16 needs a multiple of 16")
    vit = torchvision.models.vit_b_16(image_size=img_size)
    if pretrained:
        if img_size != 224:
            raise UserError(f"--pretrained ViT-B/16 needs --img_size 224 (got {img_size})")
        vit.load_state_dict(load_pretrained(torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1, "ViT-B/16"))
    layers = vit.encoder.layers
    trunk = nn.Sequential(PatchEmbed(vit), layers[:-1])
    pool = nn.Sequential(vit.encoder.ln, ClassToken())
    return CutNet(trunk, layers[-1], pool, make_head(vit.hidden_dim, num_classes))
