"""Synthetic embeddings: noise shaped like a cut's input, labelled by the original tail.

Draw noise from a family, pass it through the original tail, label each draw by the tail's argmax
and keep it while that class's quota is open. Unlike the seed's loop this always ends: after a
bounded number of draws, classes still short are filled by *steering*: fresh noise moved by a few
Adam steps on the input to raise the target class's log-probability, kept only where the tail's
argmax agrees. What remains short after a bounded number of steering rounds is reported, never
looped on. The report (per class: from noise, steered, missing) is saved next to the samples.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from models.cutnet import Tail


def draw(noise: str, n: int, shape: tuple[int, ...], g: torch.Generator, device: torch.device) -> torch.Tensor:
    size = (n, *shape)
    if noise == "gaussian":
        return torch.randn(size, generator=g, device=device)
    u = torch.rand(size, generator=g, device=device)
    if noise == "uniform":
        return 2 * u - 1
    if noise == "laplace":  # inverse CDF of Laplace(0, 1)
        c = u - 0.5
        return -c.sign() * torch.log1p(-2 * c.abs().clamp(max=0.5 - 1e-7))
    if noise == "gumbel":  # inverse CDF of Gumbel(0, 1)
        return -torch.log(-torch.log(u.clamp(1e-7, 1 - 1e-7)))
    if noise == "bernoulli":
        return (u < 0.5).float()
    raise ValueError(f"unknown noise {noise!r}; valid: gaussian, uniform, laplace, gumbel, bernoulli")


def _take(z: torch.Tensor, pred: torch.Tensor, room: torch.Tensor, C: int) -> torch.Tensor:
    """Mask of draws that fit their class's remaining quota (first come, first kept), vectorised."""
    rank = (F.one_hot(pred, C).cumsum(0) - 1).gather(1, pred[:, None])[:, 0]
    return rank < room[pred]


@torch.no_grad()
def generate(tail: Tail, shape: tuple[int, ...], num_classes: int, per_class: int, noise: str, seed: int,
             device: torch.device, max_draw_factor: int = 20, steer_rounds: int = 5, steer_steps: int = 50,
             steer_lr: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Returns (x, y, report): up to `per_class` labelled samples per class, always in bounded time."""
    t0 = time.perf_counter()
    tail = tail.eval()
    C = num_classes
    g = torch.Generator(device=device).manual_seed(seed)
    numel = max(1, int(torch.tensor(shape).prod()))
    chunk = int(min(max(64, 2**25 // numel), 8192, 4 * C * per_class))
    counts = torch.zeros(C, dtype=torch.long, device=device)
    xs, ys = [], []
    draws, budget = 0, max_draw_factor * C * per_class
    while draws < budget and int(counts.min()) < per_class:
        z = draw(noise, chunk, shape, g, device)
        pred = tail(z).argmax(1)
        keep = _take(z, pred, per_class - counts, C)
        xs.append(z[keep])
        ys.append(pred[keep])
        counts += torch.bincount(pred[keep], minlength=C)
        draws += chunk
    from_noise = counts.clone()
    rounds = 0
    while int(counts.min()) < per_class and rounds < steer_rounds:
        rounds += 1
        need = (per_class - counts).clamp_min(0)
        target = torch.repeat_interleave(torch.arange(C, device=device), need)
        for tb in target.split(max(1, chunk)):
            lr = steer_lr * 2 ** (rounds - 1)  # each round pushes harder
            z = _steer(tail, draw(noise, len(tb), shape, g, device), tb, steer_steps, lr)
            pred = tail(z).argmax(1)
            ok = pred == tb
            keep = ok.clone()
            keep[ok] = _take(z[ok], pred[ok], per_class - counts, C)
            xs.append(z[keep])
            ys.append(pred[keep])
            counts += torch.bincount(pred[keep], minlength=C)
    x, y = torch.cat(xs), torch.cat(ys)
    order = torch.argsort(y, stable=True)
    report = {
        "noise": noise, "seed": seed, "samples_per_class": per_class, "draws": draws, "draw_budget": budget,
        "steering_rounds": rounds, "steering_steps": steer_steps, "seconds": round(time.perf_counter() - t0, 3),
        "per_class": {int(c): {"from_noise": int(from_noise[c]), "steered": int(counts[c] - from_noise[c]),
                               "missing": int(per_class - counts[c])} for c in range(C)},
    }
    report["complete"] = all(v["missing"] == 0 for v in report["per_class"].values())
    return x[order], y[order], report


def _steer(tail: Tail, z: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """A few Adam steps on the inputs toward `target` (the tail's weights are not touched)."""
    with torch.enable_grad():
        z = z.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            loss = F.cross_entropy(tail(z), target)
            (grad,) = torch.autograd.grad(loss, z)
            z.grad = grad
            opt.step()
    return z.detach()
