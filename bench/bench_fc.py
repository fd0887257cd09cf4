"""FC-only unlearning speed: our loop vs a seed-style DataLoader loop vs the bare floor.

CIFAR-10-sized embeddings (50,000 × 512, random but fixed) labelled by a fixed random head, one class
forgotten, 200 epochs, batch 256, DELETE and FT. All three variants compute the same loss per step:
    ours      unlearn.run with the registered method (data resident on the device, epoch = one
              permutation split into batches, per-epoch val evaluation and epoch selection included;
              DELETE's original outputs gathered from a table made once, before the first epoch)
    loader    the same loss over torch DataLoader(TensorDataset(...), shuffle=True), as the seed does
              (the original run on every batch)
    floor     a bare loop: permutation, index, forward, loss, backward, SGD step; nothing else (the
              original run on every batch, as in loader)
Times are measured in one run, on one device, and printed with their ratios.

    python bench/bench_fc.py                      # CPU, 200 epochs (the loader variant takes minutes)
    python bench/bench_fc.py --cuda 0 --epochs 50
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.feeds import TensorFeed, predict  # noqa: E402
from core.runtime import get_device  # noqa: E402
from engine.unlearn import run  # noqa: E402
from methods import get_method  # noqa: E402
from methods.base import (
    Context,  # noqa: E402
    kd_loss,  # noqa: E402
)
from models.cutnet import Tail, make_head  # noqa: E402

N, D, C, FORGET, N_VAL = 50_000, 512, 10, 0, 5_000


def problem(device: torch.device):
    g = torch.Generator().manual_seed(0)
    head = make_head(D, C)
    with torch.no_grad():
        head[1].weight.copy_(torch.randn(C, D, generator=g) / D**0.5)
        head[1].bias.zero_()
    x = torch.randn(N + N_VAL, D, generator=g).relu()
    with torch.no_grad():
        y = head.eval()(x).argmax(1)
    tail = Tail(torch.nn.Identity(), head).to(device).eval()
    return tail, x[:N].to(device), y[:N].to(device), x[N:].to(device), y[N:].to(device)


def step_loss(method: str, student: Tail, teacher: Tail, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if method == "FT":
        return F.cross_entropy(student(x), y)
    with torch.no_grad():
        t = teacher(x)
        t[:, FORGET] = -1e9
    return kd_loss(student(x), t, 1.0)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours(method, tail, x, y, xv, yv, epochs, bsize, device) -> float:
    student, teacher = copy.deepcopy(tail), copy.deepcopy(tail).requires_grad_(False)
    hp = SimpleNamespace(lr=0.01, epochs=epochs, bsize=bsize, momentum=0.9, wd=0.0, scheduler=["none"],
                         temperature=1.0, patience=None)
    ctx = Context(C, (FORGET,), hp, device, torch.Generator().manual_seed(0))
    fm, vm = y == FORGET, yv == FORGET
    feeds = {"retain": TensorFeed(x[~fm], y[~fm]), "forget": TensorFeed(x[fm], y[fm])}
    val = TensorFeed(xv, yv)

    def evaluate(fn, row):
        acc = (predict(fn, val, 8192).argmax(1) == yv)
        row["score"] = (acc[~vm].float().mean() - acc[vm].float().mean()).item()
        return row

    sync(device)
    t = time.perf_counter()
    run(get_method(method)(student, teacher, ctx), feeds, feeds["forget"], evaluate, "val_aus")
    sync(device)
    return time.perf_counter() - t


def loader(method, tail, x, y, epochs, bsize, device) -> float:
    student, teacher = copy.deepcopy(tail), copy.deepcopy(tail).requires_grad_(False)
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    fm = (y == FORGET) if method != "FT" else (y != FORGET)
    ds = TensorDataset(x[fm].cpu(), y[fm].cpu())
    dl = DataLoader(ds, batch_size=bsize, shuffle=True, generator=torch.Generator().manual_seed(0))
    sync(device)
    t = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in dl:
            xb, yb = xb.to(device), yb.to(device)
            loss = step_loss(method, student, teacher, xb, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    sync(device)
    return time.perf_counter() - t


def floor(method, tail, x, y, epochs, bsize, device) -> float:
    student, teacher = copy.deepcopy(tail), copy.deepcopy(tail).requires_grad_(False)
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    fm = (y == FORGET) if method != "FT" else (y != FORGET)
    xs, ys = x[fm], y[fm]
    g = torch.Generator().manual_seed(0)
    sync(device)
    t = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(ys), generator=g).to(device).split(bsize):
            loss = step_loss(method, student, teacher, xs.index_select(0, idx), ys.index_select(0, idx))
            opt.zero_grad()
            loss.backward()
            opt.step()
    sync(device)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=200, help="epochs per variant")
    p.add_argument("--bsize", type=int, default=256, help="batch size")
    p.add_argument("--cuda", type=int, default=-1, help="-1 = CPU, else CUDA device index")
    p.add_argument("--methods", nargs="+", default=["DELETE", "FT"], help="methods to time")
    p.add_argument("--skip_loader", action="store_true", help="skip the (slow) DataLoader variant")
    a = p.parse_args()
    device = get_device(a.cuda)
    tail, x, y, xv, yv = problem(device)
    n_f = int((y == FORGET).sum())
    print(f"device {device}, threads {torch.get_num_threads()}, {N}×{D} embeddings, {C} classes, forget class "
          f"{FORGET} ({n_f} rows; retain {N - n_f}), {a.epochs} epochs, batch {a.bsize}")
    print(f"{'method':8s} {'ours s':>8s} {'loader s':>9s} {'floor s':>8s} {'loader/ours':>12s} {'ours/floor':>11s}")
    for m in a.methods:
        t_floor = floor(m, tail, x, y, a.epochs, a.bsize, device)
        t_ours = ours(m, tail, x, y, xv, yv, a.epochs, a.bsize, device)
        t_loader = float("nan") if a.skip_loader else loader(m, tail, x, y, a.epochs, a.bsize, device)
        print(f"{m:8s} {t_ours:8.2f} {t_loader:9.2f} {t_floor:8.2f} {t_loader / t_ours:12.1f} {t_ours / t_floor:11.2f}",
              flush=True)


if __name__ == "__main__":
    main()
