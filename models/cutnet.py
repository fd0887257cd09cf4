"""A backbone split where unlearning cuts it.

Every backbone is expressed as   trunk -> last_block -> pool -> head   so the three cuts are:
    fc       tail = head                              (input: pooled features, N×D)
    partial  tail = last_block + pool + head          (input: the last block's input, e.g. N×C×H×W)
    full     tail = trunk + last_block + pool + head  (input: images)
`tail(cut)(features_at(x, cut)) == forward(x)` exactly; the tail shares parameters with the net.
A backbone without a last block to cut before (some timm models) has `last_block = Identity` and says
why in `no_partial`: its partial cut is refused with that one line.
"""

from __future__ import annotations

import torch
from torch import nn

from core.logits import linear
from core.runtime import UserError

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
    """`no_partial`: why the partial cut is undefined ("" where it is defined). `partial_bn`: the dotted
    name of the BatchNorm whose output, after the residual sum and a ReLU, is the partial cut's input
    (ResNet: the last BatchNorm of the block before the last one), or None; the synthetic-embedding
    generator draws partial inputs from its affine parameters."""

    def __init__(self, trunk: nn.Module, last_block: nn.Module, pool: nn.Module, head: nn.Sequential,
                 no_partial: str = "", partial_bn: str | None = None):
        super().__init__()
        self.trunk, self.last_block, self.pool, self.head = trunk, last_block, pool, head
        self.no_partial = no_partial
        self.partial_bn = partial_bn

    def check_cut(self, cut: str) -> None:
        """Refuse, in one line, a cut this network does not have."""
        if cut not in CUTS:
            raise ValueError(f"unknown cut {cut!r}; valid: {', '.join(CUTS)}")
        if cut == "partial" and self.no_partial:
            raise UserError(self.no_partial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.last_block(self.trunk(x))))

    def features_at(self, x: torch.Tensor, cut: str) -> torch.Tensor:
        """Input of the tail at `cut` for images `x`."""
        self.check_cut(cut)
        if cut == "full":
            return x
        x = self.trunk(x)
        if cut == "partial":
            return x
        return self.pool(self.last_block(x))

    def tail(self, cut: str) -> Tail:
        self.check_cut(cut)
        if cut == "fc":
            return Tail(nn.Identity(), self.head)
        if cut == "partial":
            return Tail(nn.Sequential(self.last_block, self.pool), self.head)
        return Tail(nn.Sequential(self.trunk, self.last_block, self.pool), self.head)


class Classifier(nn.Linear):
    """The head's linear layer: `nn.Linear` (the same parameters and checkpoint keys). In eval mode
    (unlearning, which freezes BatchNorm and dropout, and every evaluation) its product takes the
    faster layout on the CPU with few classes (`core.logits.linear`), where on a `fc` tail it is most
    of a step. In train mode (originals and Oracles trained on images, where the convolutions
    dominate) it is torch's own, so that their weights do not depend on that layout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias) if self.training else linear(x, self.weight, self.bias)


def make_head(in_features: int, num_classes: int, dropout: float = 0.4) -> nn.Sequential:
    """Dropout + Linear, the seeds' classifier head, for every backbone."""
    return nn.Sequential(nn.Dropout(dropout), Classifier(in_features, num_classes))


def load_weights(net: nn.Module, state_dict: dict, source: str) -> None:
    """Load a checkpoint's weights strictly, or refuse in one line saying which keys do not fit (a
    checkpoint written by other model code, e.g. another timm version that renamed a layer)."""
    own = net.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    reshaped = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or reshaped:
        example = (missing or unexpected or reshaped)[0]
        raise UserError(f"{source}: refused: its weights do not fit the network built now ({len(missing)} missing, "
                        f"{len(unexpected)} unexpected, {len(reshaped)} reshaped keys, e.g. {example!r}); it was "
                        f"written by other model code: rerun the stage that wrote it with --overwrite")
    net.load_state_dict(state_dict)
