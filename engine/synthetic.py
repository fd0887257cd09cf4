"""Synthetic embeddings: inputs of a cut made from the original alone, labelled by its tail.

Two generators, both always ending in bounded time, both reporting per class how the samples were
obtained (saved next to the samples):

`matched` (the default): noise shaped by what the original says about the cut's input, steered to
the original's confidence. The prior is the network's own: for a ResNet, the partial cut's input is
the output of a residual block, ReLU(BN(...) + shortcut), so each channel is drawn as
ReLU(beta + gamma * eps) with (gamma, beta) the affine of the BatchNorm that ends that block
(non-negative, at the scale the network was trained on); the fc cut's input is such a partial input
passed through the last block and the pooling (non-negative averages of ReLU outputs, as real
embeddings are); backbones that declare no such BatchNorm get standard normal partial inputs
(transformers: the last block's LayerNorms set the scale). Each sample is then assigned a class c
(balanced quotas), a random other class j and a target confidence drawn uniformly in `confidence`,
and moved by Adam steps on the input (projected back onto the prior's support: non-negative where
the prior is) first until the tail gives j probability 0.5, then until it gives c the target
confidence; a sample stops where it reaches its goal. Samples that miss their class after a bounded
number of steps are drawn again, a bounded number of times; what is still missing is reported.
The samples thus lie where the original is confident, between each class and every other, as its
training data does. Gaussian noise through the head lands near the decision boundaries and outside
the non-negative orthant where real embeddings live; steered from the prior alone, every class's
samples keep the prior's own favourite class as runner-up; unlearning learned on either does not
transfer to real forget samples (measured in the README's robustness report).

The seed's noise families (`gaussian`, `uniform`, `laplace`, `gumbel`, `bernoulli`): draw noise, pass
it through the tail, label each draw by the argmax and keep it while that class's quota is open;
unlike the seed's loop this always ends: after a bounded number of draws, classes still short are
filled by steering fresh noise toward them, kept only where the tail's argmax agrees.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from core.logits import cross_entropy, softmax
from models.cutnet import CutNet, Tail

NOISES = ("matched", "gaussian", "uniform", "laplace", "gumbel", "bernoulli")


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


# Bumped whenever a change to the generators changes the samples they draw: cached sets of another
# version are made again.
GENERATOR_VERSION = 2


def synthesize(net: CutNet, cut: str, partial_shape: tuple[int, ...], num_classes: int, per_class: int, noise: str,
               seed: int, device: torch.device) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict]:
    """A synthetic set for `cut`: {'train': (x, y), 'val': (x, y)} and its report. The held-out 'val'
    part (a quarter of the quota per class, at least 20, its own seed) selects the epoch of a
    source-free run. Uses nothing but the original `net`."""
    parts, report = {}, {}
    for part, k, s in (("train", per_class, seed), ("val", max(20, per_class // 4), seed + 100003)):
        if noise == "matched":
            x, y, rep = generate_matched(net, cut, partial_shape, num_classes, k, s, device)
        else:
            shape = partial_shape if cut == "partial" else tuple(net.head[-1].weight.shape[1:])
            x, y, rep = generate(net.tail(cut), shape, num_classes, k, noise, s, device)
        parts[part] = (x, y)
        report[part] = rep
    report["seconds"] = round(report["train"]["seconds"] + report["val"]["seconds"], 3)
    report["complete"] = report["train"]["complete"] and report["val"]["complete"]
    return parts, report


@torch.no_grad()
def prior(net: CutNet, cut: str, partial_shape: tuple[int, ...], n: int, g: torch.Generator,
          device: torch.device) -> torch.Tensor:
    """`n` draws shaped like the input of `cut` (fc or partial; `partial_shape` is the partial cut's input
    shape) from the network's own prior (see the module docstring): BatchNorm-shaped, non-negative ReLU
    outputs where the network declares the BatchNorm that ends the block before the partial cut
    (`net.partial_bn`), standard normal otherwise; fc inputs are partial draws through the last block
    and the pooling."""
    if cut == "fc":
        body = net.tail("partial").body.eval()
        return torch.cat([body(prior(net, "partial", partial_shape, len(c), g, device))
                          for c in torch.arange(n).split(1024)])
    shape = partial_shape
    eps = torch.randn((n, *shape), generator=g, device=device)
    if net.partial_bn is None:
        return eps
    bn = net.get_submodule(net.partial_bn)
    view = (1, -1) + (1,) * (len(shape) - 1)  # per channel (dim 1)
    return torch.relu(bn.bias.view(view) + bn.weight.view(view) * eps)


@torch.no_grad()
def generate_matched(net: CutNet, cut: str, partial_shape: tuple[int, ...], num_classes: int, per_class: int, seed: int,
                     device: torch.device, confidence: tuple[float, float] = (0.5, 0.99), steps: int = 100,
                     lr: float = 0.05, rounds: int = 3) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Returns (x, y, report): `per_class` samples of every class (fewer only where steering failed),
    drawn from the network's prior at `cut` and steered to a confidence in `confidence`."""
    t0 = time.perf_counter()
    net.eval()
    tail = net.tail(cut).eval()
    C = num_classes
    g = torch.Generator(device=device).manual_seed(seed)
    counts = torch.zeros(C, dtype=torch.long, device=device)
    xs, ys, confs, tried = [], [], [], 0
    chunk = int(min(max(64, 2**24 // max(1, int(torch.tensor(partial_shape).prod()))), 4096))
    for r in range(rounds):
        need = (per_class - counts).clamp_min(0)
        if int(need.sum()) == 0:
            break
        target = torch.repeat_interleave(torch.arange(C, device=device), need)
        for tb in target.split(chunk):
            x0 = prior(net, cut, partial_shape, len(tb), g, device)
            nonneg = bool((x0 >= 0).all())
            other = (tb + torch.randint(1, C, tb.shape, generator=g, device=device)) % C
            x0 = _steer_to(tail, x0, other, torch.full(tb.shape, 0.5, device=device), steps * (r + 1), lr, nonneg)
            tau = confidence[0] + (confidence[1] - confidence[0]) * torch.rand(len(tb), generator=g, device=device)
            x = _steer_to(tail, x0, tb, tau, steps * (r + 1), lr, nonneg)
            p = softmax(tail(x))
            ok = p.argmax(1) == tb
            xs.append(x[ok])
            ys.append(tb[ok])
            confs.append(p.gather(1, tb[:, None])[ok, 0])
            counts += torch.bincount(tb[ok], minlength=C)
            tried += len(tb)
    x, y, conf = torch.cat(xs), torch.cat(ys), torch.cat(confs)
    order = torch.argsort(y, stable=True)
    report = {
        "noise": "matched", "seed": seed, "samples_per_class": per_class, "draws": tried, "rounds": r + 1,
        "steering_steps": steps, "confidence_target": list(confidence), "prior": net.partial_bn or "standard normal",
        "seconds": round(time.perf_counter() - t0, 3),
        "per_class": {int(c): {"from_noise": 0, "steered": int(counts[c]), "missing": int(per_class - counts[c]),
                               "mean_confidence": round(float(conf[y == c].mean()), 4) if counts[c] else None}
                      for c in range(C)},
    }
    report["complete"] = all(v["missing"] == 0 for v in report["per_class"].values())
    return x[order], y[order], report


def _steer(tail: Tail, z: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """A few Adam steps on the inputs toward `target` (the tail's weights are not touched)."""
    with torch.enable_grad():
        z = z.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            loss = cross_entropy(tail(z), target)
            (grad,) = torch.autograd.grad(loss, z)
            z.grad = grad
            opt.step()
    return z.detach()


def _steer_to(tail: Tail, z: torch.Tensor, target: torch.Tensor, tau: torch.Tensor, steps: int, lr: float,
              nonneg: bool, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.Tensor:
    """Adam steps on each input toward its `target` until the tail gives it probability `tau`: a sample
    that reached its goal stops, and only the samples still moving are computed (the cost falls as
    they arrive). With `nonneg`, inputs are projected back onto the non-negative orthant."""
    z = z.clone()
    m, v = torch.zeros_like(z), torch.zeros_like(z)
    t = torch.zeros(len(z), device=z.device)  # Adam's step count, per sample
    idx = torch.arange(len(z), device=z.device)
    for _ in range(steps):
        with torch.enable_grad():
            za = z[idx].requires_grad_(True)
            ce = cross_entropy(tail(za), target[idx], reduction="none")
            (grad,) = torch.autograd.grad(ce.sum(), za)
        moving = (-ce.detach()).exp() < tau[idx]
        idx, grad = idx[moving], grad[moving]
        if len(idx) == 0:
            break
        t[idx] += 1
        m[idx] = betas[0] * m[idx] + (1 - betas[0]) * grad
        v[idx] = betas[1] * v[idx] + (1 - betas[1]) * grad * grad
        shape = (-1,) + (1,) * (z.dim() - 1)
        mh = m[idx] / (1 - betas[0] ** t[idx]).view(shape)
        vh = v[idx] / (1 - betas[1] ** t[idx]).view(shape)
        step = z[idx] - lr * mh / (vh.sqrt() + eps)
        z[idx] = step.clamp_min(0) if nonneg else step
    return z


def _rbf(u: torch.Tensor, v: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    return torch.exp(-torch.cdist(u, v) ** 2 / (2 * sigma2))


@torch.no_grad()
def distance_to_real(syn: tuple[torch.Tensor, torch.Tensor], real: tuple[torch.Tensor, torch.Tensor],
                     num_classes: int, max_per_class: int = 500) -> dict:
    """How far synthetic samples lie from real ones of the same class (for the generator's report only;
    never used by a run). Per class and overall (median over classes):
    `mean_ratio`, `std_ratio`: medians over dimensions of synthetic / real per-dimension mean and std
    (dimensions where the real value is not ~0); `mmd`: squared maximum mean discrepancy, RBF kernel at
    the median pairwise distance of the real samples (0 = same distribution); `nn_ratio`: mean distance
    from a real sample to its nearest synthetic sample over the mean distance to its nearest other
    real sample (about 1 when the synthetic samples cover the real ones as densely as they cover
    themselves, much more when they lie elsewhere)."""
    (xs, ys), (xr, yr) = syn, real
    xs, xr = xs.flatten(1).float(), xr.flatten(1).float()
    out = {}
    for c in range(num_classes):
        a, b = xs[ys == c][:max_per_class], xr[yr == c][:max_per_class]
        if len(a) < 2 or len(b) < 2:
            continue
        mr, sr = b.mean(0), b.std(0)
        keep_m, keep_s = mr.abs() > 1e-6, sr > 1e-6
        rr = torch.cdist(b, b)
        sigma2 = rr[rr > 0].median() ** 2
        mmd = _rbf(a, a, sigma2).mean() + _rbf(b, b, sigma2).mean() - 2 * _rbf(a, b, sigma2).mean()
        nn_real = (rr + torch.eye(len(b)) * 1e30).min(1).values.mean()
        out[c] = {"mean_ratio": float((a.mean(0)[keep_m] / mr[keep_m]).median()),
                  "std_ratio": float((a.std(0)[keep_s] / sr[keep_s]).median()),
                  "mmd": float(mmd), "nn_ratio": float(torch.cdist(b, a).min(1).values.mean() / nn_real)}
    if out:
        out["median"] = {k: float(torch.tensor([v[k] for v in out.values()]).median()) for k in next(iter(out.values()))}
    return out
