"""Representation-level evaluation: is the forget class still readable inside the network?

Output-level metrics only see the logits. An unlearned head on unchanged features can reach 0% forget
accuracy while the features still separate the class perfectly, and a few steps of fine-tuning then
bring it back. Three measurements look beneath the head (README § Metrics and membership inference):

- `probe`: a fresh multinomial logistic regression over all classes, fitted on a model's features of
  the val split (forget class included) and scored on the test split: how much of each class a
  linear read-out of the features still recovers (linear-probe recovery).
- `linear_cka`: linear centred kernel alignment (Kornblith et al., 2019) between two models'
  features of the same samples: 1 = the same representation up to a rotation and a scale.
- `relearn`: a few SGD steps on k real samples per class from the unlearned weights (few-shot
  relearning attack), then test forget accuracy.

Everything runs on the features' device, full-batch, with fixed seeds: deterministic and cheap
(milliseconds for a 512-d head on digits).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from core.feeds import Feed, TensorFeed, predict
from core.logits import cross_entropy
from evaluation.metrics import accuracy
from models.cutnet import CutNet, Tail

SEED = 0  # relearning samples: a fixed draw, like the MIA subsampling (the attack is part of the evaluation)
PROBE_L2 = 1e-3  # ridge on the probe's weights (standardised features): keeps a separable fit finite
PROBE_ITERS = 100  # L-BFGS iterations of the probe (full batch, strong Wolfe line search)
RELEARN_K = (1, 10)  # samples per class of the relearning attack (the CSV has one column per k)
RELEARN_STEPS = 20  # SGD steps of the attack
RELEARN_MOMENTUM = 0.9
RELEARN_BSIZE = 256  # the attack's batch: all of its samples when they fit, else a seeded draw per step
NAN = float("nan")


# --- features -------------------------------------------------------------------------------------

@torch.inference_mode()
def net_features(net: CutNet, feed: Feed, bsize: int = 512) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(penultimate features, pooled input of the last block, logits) of a whole network on images, in
    one pass. The cut input is pooled with the network's own pooling (ResNet: global average; ViT:
    final norm + class token; Swin: norm + average), so it is a vector whatever the backbone."""
    feats, cuts, logits = [], [], []
    for x, _, _ in feed.batches(bsize):
        h = net.trunk(x)
        cuts.append(net.pool(h).flatten(1))
        f = net.pool(net.last_block(h)).flatten(1)
        feats.append(f)
        logits.append(net.head(f))
    return torch.cat(feats), torch.cat(cuts), torch.cat(logits)


@torch.inference_mode()
def tail_features(tail: Tail, setting: str, feed: Feed, bsize: int = 1024) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(penultimate features, pooled cut input or None) of a tail over its own inputs. Only the full
    setting has a cut inside the tail (the trunk's output); in `partial` the cut input is the cached
    embedding itself, which unlearning does not change, and `fc` has none."""
    if setting != "full":
        return predict(tail.features, feed, bsize), None
    trunk, block, pool = tail.body  # full: Sequential(trunk, last_block, pool), see models/cutnet.py
    feats, cuts = [], []
    for x, _, _ in feed.batches(bsize):
        h = trunk(x)
        cuts.append(pool(h).flatten(1))
        feats.append(pool(block(h)).flatten(1))
    return torch.cat(feats), torch.cat(cuts)


# --- linear CKA -----------------------------------------------------------------------------------

def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA between the rows of `a` (n×d1) and `b` (n×d2), the same n samples in the same order:
    ‖bᵀa‖²_F / (‖aᵀa‖_F ‖bᵀb‖_F) after centring each feature. Invariant to orthogonal transforms and
    isotropic scaling of either side; 1 for identical representations. NaN for fewer than 2 samples
    or a constant side. Computed in float64 through the smaller of the n×n Gram and d×d forms."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    if len(a) != len(b):
        raise ValueError(f"linear_cka: {len(a)} vs {len(b)} samples")
    if len(a) < 2:
        return NAN
    a, b = a - a.mean(0), b - b.mean(0)
    if len(a) <= min(a.shape[1], b.shape[1]):
        ka, kb = a @ a.T, b @ b.T
        num, den = (ka * kb).sum(), ka.norm() * kb.norm()
    else:
        num, den = (b.T @ a).pow(2).sum(), (a.T @ a).norm() * (b.T @ b).norm()
    return float(num / den) if den > 0 else NAN


# --- linear probe ---------------------------------------------------------------------------------

def fit_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float = PROBE_L2,
              iters: int = PROBE_ITERS) -> Callable[[torch.Tensor], torch.Tensor]:
    """A multinomial logistic regression over `num_classes` on features `x` (standardised with their own
    mean and std), fitted full-batch by L-BFGS from zero weights: deterministic, no seed needed.
    Returns the fitted classifier (features -> logits)."""
    x = x.detach().flatten(1).float().clone()  # a normal tensor (features come from inference mode)
    y = y.detach().long().to(x.device)
    mu = x.mean(0)
    sd = x.std(0).clamp_min(1e-6) if len(x) > 1 else torch.ones_like(mu)
    z = (x - mu) / sd
    w = torch.zeros(x.shape[1], num_classes, device=x.device, requires_grad=True)
    b = torch.zeros(num_classes, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = cross_entropy(z @ w + b, y) + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda t: ((t.flatten(1).float() - mu) / sd) @ w + b


def probe_predictions(fit_x: torch.Tensor, fit_y: torch.Tensor, test_x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Test-split logits of a probe fitted on (fit_x, fit_y)."""
    return fit_probe(fit_x, fit_y, num_classes)(test_x.detach())


def forget_retain_accuracy(logits: torch.Tensor, y: torch.Tensor, forget_mask: torch.Tensor) -> tuple[float, float]:
    """(accuracy on the forget part, accuracy on the rest); NaN for an empty part."""
    return accuracy(logits, y, forget_mask), accuracy(logits, y, ~forget_mask)


# --- few-shot relearning --------------------------------------------------------------------------

def per_class_sample(y: torch.Tensor, k: int, seed: int = SEED) -> torch.Tensor:
    """Sorted positions of k samples of every class of `y` (all of a class with fewer), drawn with `seed`:
    a random order, stably sorted by class, keeping each class's first k."""
    y = y.cpu()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    order = perm[torch.argsort(y[perm], stable=True)]
    ys = y[order]
    counts = torch.bincount(ys)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(ys)) - starts[ys]
    return torch.sort(order[rank < k]).values


def gather(feed: Feed, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and labels at positions `idx` of a feed, as tensors on its device (images are read
    through the feed's transform)."""
    if isinstance(feed, TensorFeed):
        i = idx.to(feed.x.device)
        return feed.x[i], feed.y[i]
    mask = torch.zeros(len(feed), dtype=torch.bool)
    mask[idx.cpu()] = True
    xs, ys = [], []
    for x, y, _ in feed.subset(mask).batches(RELEARN_BSIZE):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def relearn(tail: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, steps: int = RELEARN_STEPS,
            seed: int = SEED) -> nn.Module:
    """A copy of `tail` after `steps` SGD steps (momentum 0.9) of cross-entropy on (x, y), every
    parameter trainable, BatchNorm statistics frozen and dropout off (as in unlearning)."""
    tail = copy.deepcopy(tail).eval()
    params = [p for p in tail.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.SGD(params, lr=lr, momentum=RELEARN_MOMENTUM)
    g = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for _ in range(steps):
            if len(y) > RELEARN_BSIZE:
                i = torch.randperm(len(y), generator=g)[:RELEARN_BSIZE].to(x.device)
                xb, yb = x[i], y[i]
            else:
                xb, yb = x, y
            loss = cross_entropy(tail(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return tail.eval()


def relearn_forget_accuracy(tail: nn.Module, train: Feed, test_forget: Feed, lr: float,
                            ks: tuple[int, ...] = RELEARN_K, steps: int = RELEARN_STEPS,
                            to_input: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[int, float]:
    """{k: accuracy on `test_forget` (the forget-class test samples) after relearning on k real train
    samples per class}. Both feeds give what the tail takes, unless `to_input` maps the train inputs
    there (an Oracle's images to its cut). The samples of every k come from one draw (k=1's are among
    k=10's), read once."""
    idx = {k: per_class_sample(train.targets, k) for k in ks}
    pool = idx[max(ks)]
    x_all, y_all = gather(train, pool)
    if to_input is not None:
        with torch.inference_mode():
            x_all = to_input(x_all)
        x_all = x_all.clone()  # a normal tensor again, fit for autograd
    out = {}
    for k in ks:
        keep = torch.isin(pool, idx[k]).to(y_all.device)
        model = relearn(tail, x_all[keep], y_all[keep], lr, steps)
        out[k] = accuracy(predict(model, test_forget), test_forget.targets)
    return out
