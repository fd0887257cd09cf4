"""Surrogate images for SCAR's distillation in the full setting: out-of-distribution inputs, no
retain data. `noise`: Gaussian-noise images (seed B's option; needs no download)."""

from __future__ import annotations

import argparse

import torch

from feeds import TensorFeed
from runtime import UserError


def surrogate_feed(args: argparse.Namespace, n_default: int, device: torch.device) -> TensorFeed:
    kind = args.surrogate_dataset or "noise"
    n = args.surrogate_quantity or n_default
    g = torch.Generator().manual_seed(args.seed)
    if kind == "noise":
        x = torch.randn(n, 3, args.img_size, args.img_size, generator=g)
        return TensorFeed(x.to(device), torch.full((n,), -1, dtype=torch.long, device=device))
    raise UserError(f"--surrogate_dataset {kind}: not available yet; valid: noise")
