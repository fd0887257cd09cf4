"""Cached embeddings: the inputs of the fc and partial cuts for every sample of a split.

One pass through the trunk gives both cuts (partial = trunk output; fc = pooled last block). Files
carry the original's fingerprint so that embeddings of a retrained original are refused as stale.
"""

from __future__ import annotations

import hashlib

import torch

from core.feeds import ImageFeed
from core.runtime import progress
from models.cutnet import CutNet


def fingerprint(net: CutNet) -> str:
    """Identifies the original an embedding or synthetic set was made from (hash of the head)."""
    w = net.head[-1].weight.detach().float().cpu().contiguous()
    return hashlib.sha1(w.numpy().tobytes()).hexdigest()[:16]


@torch.inference_mode()
def extract(net: CutNet, feed: ImageFeed, cuts: list[str], bsize: int, desc: str = "embed") -> dict[str, torch.Tensor]:
    """{cut: N×... tensor on the CPU} for `cuts` ⊆ {fc, partial}, in feed order."""
    for c in cuts:
        net.check_cut(c)  # a timm model without a partial cut says so here
    net.eval()
    outs: dict[str, list[torch.Tensor]] = {c: [] for c in cuts}
    for x, _, _ in progress(feed.batches(bsize), total=feed.num_batches(bsize), desc=desc):
        z = net.trunk(x)
        if "partial" in outs:
            outs["partial"].append(z.float().cpu())
        if "fc" in outs:
            outs["fc"].append(net.pool(net.last_block(z)).float().cpu())
    return {c: torch.cat(v) for c, v in outs.items()}
