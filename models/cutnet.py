"""A backbone split where unlearning cuts it.

Every backbone is expressed as   trunk -> last_block -> pool -> head   so the three cuts are:
    fc       tail = head                              (input: pooled features, N×D)
    partial  tail = last_block + pool + head          (input: the last block's input, e.g. N×C×H×W)
    full     tail = trunk + last_block + pool + head  (input: images)
`tail(cut)(features_at(x, cut)) == forward(x)` exactly; the tail shares parameters with the net.
"""

from __future__ import annotations

import torch
from torch import nn

CUTS = ("fc", "partial", "full")


class Tail(nn.Module):
    """The trainable end of a network: `body` maps the cut's input to features, `head` to logits."""

    def __init__(self, body: nn.Module, head: nn.Sequential):
        super().__init__()
        self.body, self.head = body, head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input of the final classifier (what SCAR measures distances on)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @property
    def linear(self) -> nn.Linear:
        """The final linear layer (BE expands and prunes it)."""
        return self.head[-1]


class CutNet(nn.Module):
    """`partial_bn`: the dotted name of the BatchNorm whose output, after the residual sum and a ReLU,
    is the partial cut's input (ResNet: the last BatchNorm of the block before the last one), or None.
    The synthetic-embedding generator draws partial inputs from its affine parameters."""

    def __init__(self, trunk: nn.Module, last_block: nn.Module, pool: nn.Module, head: nn.Sequential,
                 partial_bn: str | None = None):
        super().__init__()
        self.trunk, self.last_block, self.pool, self.head = trunk, last_block, pool, head
        self.partial_bn = partial_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.last_block(self.trunk(x))))

    def features_at(self, x: torch.Tensor, cut: str) -> torch.Tensor:
        """Input of the tail at `cut` for images `x`."""
        if cut == "full":
            return x
        x = self.trunk(x)
        if cut == "partial":
            return x
        if cut == "fc":
            return self.pool(self.last_block(x))
        raise ValueError(f"unknown cut {cut!r}; valid: {', '.join(CUTS)}")

    def tail(self, cut: str) -> Tail:
        if cut == "fc":
            return Tail(nn.Identity(), self.head)
        if cut == "partial":
            return Tail(nn.Sequential(self.last_block, self.pool), self.head)
        if cut == "full":
            return Tail(nn.Sequential(self.trunk, self.last_block, self.pool), self.head)
        raise ValueError(f"unknown cut {cut!r}; valid: {', '.join(CUTS)}")


def make_head(in_features: int, num_classes: int, dropout: float = 0.4) -> nn.Sequential:
    """Dropout + Linear, the seeds' classifier head, for every backbone."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))
