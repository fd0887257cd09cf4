"""The class dimension of N×C logits: the head's product, softmax, log-softmax and cross-entropy,
written once for every method and metric.

With fewer than 16 classes, torch's CPU kernels along the last dimension leave their vectorised
path: on one AVX-512 thread, for 256 × 10 logits, log-softmax takes 40 µs along the last dimension
against 6 µs along the first dimension of the transpose, and a 512 → 10 product takes 90 µs as x·Wᵀ
against 50 µs as W·xᵀ. On a `fc` tail these are most of a step. So, on the CPU with fewer than
`FEW` classes, these functions compute in the transposed layout; the values are the same functions,
in other last bits than torch's default kernels (as on another CPU). On a GPU, or with more classes,
they are torch's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FEW = 16


def _few(n_classes: int, t: torch.Tensor) -> bool:
    return n_classes < FEW and t.dim() == 2 and t.device.type == "cpu"


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x·Wᵀ + b (N×C, contiguous)."""
    if not _few(weight.shape[0], x):
        return F.linear(x, weight, bias)
    out = torch.mm(weight, x.t()) if bias is None else torch.addmm(bias[:, None], weight, x.t())
    return out.t().contiguous()


def log_softmax(z: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over the classes (dimension 1) of N×C logits (on the fast path, a transposed
    view: call `.contiguous()` before `.view`)."""
    return torch.log_softmax(z.t(), 0).t() if _few(z.shape[-1], z) else torch.log_softmax(z, 1)


def softmax(z: torch.Tensor) -> torch.Tensor:
    """Probabilities over the classes (dimension 1) of N×C logits (a transposed view, as `log_softmax`)."""
    return torch.softmax(z.t(), 0).t() if _few(z.shape[-1], z) else torch.softmax(z, 1)


def cross_entropy(z: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """`F.cross_entropy(z, y, reduction=...)` without label smoothing or class weights."""
    return F.nll_loss(log_softmax(z), y, reduction=reduction)
