"""Training of originals and oracles on images (stage 1 and stage 4), resumable and DDP-aware.

Every epoch reseeds from (seed, epoch) and checkpoints model, optimiser, scheduler, RNG states and
the best-so-far weights to `<ckpt>.state.pt`; a killed run restarted with the same command resumes
after its last finished epoch and ends with the same weights as an uninterrupted one. The final
checkpoint holds the weights of the best validation epoch (not the last one). Under `torchrun`
(WORLD_SIZE > 1) the same code runs DistributedDataParallel: gloo on CPU, NCCL on CUDA; rank 0
alone writes files; losses and accuracies are reduced over ranks.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.optim.adam import adam as adam_update
from torch.optim.sgd import sgd as sgd_update
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from core import paths
from core.runtime import UserError, progress
from core.storage import atomic_torch_save, load_checkpoint, save_checkpoint


@dataclass(frozen=True)
class TrainRecipe:
    """How an original or an Oracle is trained: the data set's recipe after command-line overrides.
    `scheduler` is ['cosine'], ['none'] or MultiStepLR milestones (see `make_scheduler`)."""

    epochs: int
    bsize: int
    lr: float
    momentum: float
    wd: float
    label_smoothing: float
    scheduler: list
    patience: int | None = None
    pretrained: bool = False
    val_fraction: float = 0.1
    num_workers: int = 0


# Options a resumed run must share with the killed one (else its state would be mixed with another recipe).
RESUME_KEYS = ("epochs", "bsize", "lr", "momentum", "wd", "label_smoothing", "scheduler", "patience", "pretrained",
               "val_fraction")


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's BatchNorm statistics: each rank's last forward of an epoch updated
        its own copy, and evaluation and the kept weights must be the same model on every rank."""
        if self.world > 1:
            for b in module.buffers():
                dist.broadcast(b.data, 0)

    def gather_digests(self, digest: str, device: torch.device) -> list[str]:
        """Every rank's `state_digest`, on every rank (a check that DDP kept the replicas equal)."""
        if self.world <= 1:
            return [digest]
        mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.int64, device=device)
        out = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(out, mine)
        return [bytes(t.tolist()).hex() for t in out]


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-1 of a state dict (names, dtypes, shapes and bytes): equal digests = identical weights."""
    h = hashlib.sha1()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def init_distributed(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the torchrun process group when launched by torchrun; no-op under plain python."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device(f"cuda:{local}")
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return Dist(dist.get_rank(), world, local), device


def make_optimizer(params, kind: str, lr: float, momentum: float, wd: float) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd)


class Stepper:
    """`zero_grad(set_to_none=True)`, `backward`, `step` of a torch SGD or Adam with one parameter group,
    at less cost per step: after the first step (torch's own, which creates the optimizer's state), each
    step calls torch's functional `sgd`/`adam` with that state and the group's current settings (the
    scheduler's lr included), the arithmetic `opt.step()` runs, without its wrapper (profiler
    records, hooks, state lookups) or `zero_grad`'s. On a 512 -> 10 head at batch 256 that wrapper
    costs more than the update itself. Any other optimizer, or a step where a parameter got no
    gradient, goes through `opt.step()`."""

    def __init__(self, opt: torch.optim.Optimizer):
        self.opt, self.fast = opt, None
        (self.group,) = opt.param_groups
        self.params = list(self.group["params"])

    def _bind(self) -> None:
        g, st = self.group, [self.opt.state[p] for p in self.params]
        if type(self.opt) is torch.optim.SGD and not g["differentiable"]:
            bufs = [s.get("momentum_buffer") for s in st]
            self.fast = lambda grads: sgd_update(
                self.params, grads, bufs, foreach=g["foreach"], fused=g["fused"], weight_decay=g["weight_decay"],
                momentum=g["momentum"], lr=g["lr"], dampening=g["dampening"], nesterov=g["nesterov"],
                maximize=g["maximize"])
        elif type(self.opt) is torch.optim.Adam and not (g["differentiable"] or g["amsgrad"]):
            avg, sq, steps = ([s[k] for s in st] for k in ("exp_avg", "exp_avg_sq", "step"))
            self.fast = lambda grads: adam_update(
                self.params, grads, avg, sq, [], steps, amsgrad=False, has_complex=False, beta1=g["betas"][0],
                beta2=g["betas"][1], lr=g["lr"], weight_decay=g["weight_decay"], eps=g["eps"],
                maximize=g["maximize"], foreach=g["foreach"], capturable=g["capturable"], differentiable=False,
                fused=g["fused"], decoupled_weight_decay=g["decoupled_weight_decay"])
        else:
            self.fast = False

    def __call__(self, loss: torch.Tensor) -> None:
        for p in self.params:
            p.grad = None
        loss.backward()
        grads = [p.grad for p in self.params]
        complete = all(gr is not None for gr in grads)
        if not (self.fast and complete):
            self.opt.step()
            if self.fast is None and complete:  # every parameter now has its state
                self._bind()
            return
        with torch.no_grad():
            self.fast(grads)


def make_scheduler(opt: torch.optim.Optimizer, scheduler: list, epochs: int):
    """'cosine' over `epochs`, 'none', or MultiStepLR at integer milestones (gamma 0.1, or a last item
    'gamma=G': seed B halves the rate, gamma=0.5); stepped per epoch."""
    if scheduler == ["cosine"]:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    if scheduler == ["none"]:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    gamma = float(scheduler[-1][6:]) if str(scheduler[-1]).startswith("gamma=") else 0.1
    milestones = [int(m) for m in scheduler if not str(m).startswith("gamma=")]
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma)


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


@torch.no_grad()
def evaluate_accuracy(net: torch.nn.Module, ds: Dataset, bsize: int, device: torch.device, dd: Dist,
                      num_workers: int = 0) -> float:
    """Accuracy over `ds`, each rank taking every world-th sample, counts summed over ranks."""
    net.eval()
    shard = torch.utils.data.Subset(ds, list(range(dd.rank, len(ds), dd.world)))
    counts = torch.zeros(2, device=device)
    for x, y in DataLoader(shard, batch_size=bsize, num_workers=num_workers):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device):
            out = net(_cl(x, device))
        counts += torch.stack([(out.argmax(1) == y).sum().float(), torch.tensor(float(len(y)), device=device)])
    dd.sum(counts)
    return (counts[0] / counts[1].clamp_min(1)).item()


def _cl(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def _autocast(device: torch.device):
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def train_classifier(net: torch.nn.Module, train_ds: Dataset, val_ds: Dataset, recipe: TrainRecipe, ckpt: Path, meta: dict,
                     device: torch.device, seed: int, desc: str = "train") -> dict:
    """Train `net` on `train_ds`, keep the best epoch on `val_ds`, write `ckpt` (rank 0). Returns a summary."""
    dd, device = init_distributed(device)
    state_file = paths.training_state(ckpt)
    net.to(device)
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None) \
        if dd.world > 1 else net
    opt = make_optimizer(net.parameters(), "sgd", recipe.lr, recipe.momentum, recipe.wd)
    sched = make_scheduler(opt, recipe.scheduler, recipe.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    start, best_acc, best_epoch, best_state, history = 0, -1.0, -1, None, []
    t0, elapsed_before = time.time(), 0.0
    options = {k: getattr(recipe, k) for k in RESUME_KEYS}
    options["seed"] = seed
    if state_file.exists():
        st = load_checkpoint(state_file, expect={k: meta[k] for k in ("dataset", "model", "num_classes", "img_size")})
        saved = st["meta"].get("options", {})
        diff = [f"--{k} {saved.get(k)} (now {v})" for k, v in options.items() if saved.get(k) != v]
        if diff:
            raise UserError(f"{state_file} holds a killed run trained with other options: {', '.join(diff)}; "
                            f"rerun with those options to resume it, or delete the file to start afresh")
        net.load_state_dict(st["state_dict"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        _set_rng_state(st["rng"])
        start, best_acc, best_epoch = st["epoch"] + 1, st["best_acc"], st["best_epoch"]
        best_state, history, elapsed_before = st["best_state"], st["history"], st["elapsed"]
        if dd.main:
            print(f"{desc}: resuming {ckpt.name} after epoch {start} (best val acc {best_acc:.4f} at epoch "
                  f"{best_epoch + 1})")
    per_rank_bs = max(1, recipe.bsize // dd.world)
    bad_epochs = 0 if best_epoch < 0 else (start - 1 - best_epoch)
    for epoch in range(start, recipe.epochs):
        torch.manual_seed(seed * 100003 + epoch)  # augmentation, dropout: a function of (seed, epoch) only
        g = torch.Generator().manual_seed(seed * 100003 + epoch)
        if dd.world > 1:
            sampler = torch.utils.data.DistributedSampler(train_ds, dd.world, dd.rank, shuffle=True, seed=seed)
            sampler.set_epoch(epoch)
            loader = DataLoader(train_ds, per_rank_bs, sampler=sampler, num_workers=recipe.num_workers,
                                pin_memory=device.type == "cuda", drop_last=False, generator=g)
        else:
            loader = DataLoader(train_ds, per_rank_bs, shuffle=True, generator=g, num_workers=recipe.num_workers,
                                pin_memory=device.type == "cuda", drop_last=len(train_ds) > per_rank_bs)
        model.train()
        sums = torch.zeros(3, device=device)  # loss·n, correct, n
        bar = progress(loader, desc=f"{desc} epoch {epoch + 1}/{recipe.epochs}", disable=not dd.main)
        for x, y in bar:
            x, y = _cl(x.to(device, non_blocking=True), device), y.to(device, non_blocking=True)
            with _autocast(device):
                out = model(x)
                loss = F.cross_entropy(out, y, label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sums += torch.stack([loss.detach().float() * len(y), (out.argmax(1) == y).sum().float(),
                                 torch.tensor(float(len(y)), device=device)])
            if bar.n % 10 == 0:
                bar.set_postfix(loss=f"{(sums[0] / sums[2]).item():.3f}", acc=f"{(sums[1] / sums[2]).item():.3f}")
        sched.step()
        dd.broadcast_buffers(net)
        dd.sum(sums)
        train_loss, train_acc = (sums[0] / sums[2]).item(), (sums[1] / sums[2]).item()
        if not torch.isfinite(torch.tensor(train_loss)):
            kept = f"state of epoch {epoch} kept in {state_file}" if epoch > 0 else "no state kept"
            raise UserError(f"{desc}: non-finite training loss at epoch {epoch + 1}; lower --lr ({kept})")
        val_acc = evaluate_accuracy(net, val_ds, per_rank_bs * 2, device, dd, recipe.num_workers)
        improved = val_acc > best_acc
        if improved:
            best_acc, best_epoch, bad_epochs = val_acc, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        else:
            bad_epochs += 1
        history.append(dict(epoch=epoch + 1, train_loss=train_loss, train_acc=train_acc, val_acc=val_acc))
        if dd.main:
            tqdm.write(f"{desc} epoch {epoch + 1}/{recipe.epochs}: loss {train_loss:.4f} train acc {train_acc:.4f} "
                       f"val acc {val_acc:.4f}{' *' if improved else ''}")
            atomic_torch_save(dict(state_dict=net.state_dict(), optimizer=opt.state_dict(),
                                   scheduler=sched.state_dict(), rng=_rng_state(), epoch=epoch, best_acc=best_acc,
                                   best_epoch=best_epoch, best_state=best_state, history=history,
                                   meta={**meta, "options": options},
                                   elapsed=elapsed_before + time.time() - t0), state_file)
        dd.barrier()
        if recipe.patience and bad_epochs >= recipe.patience:
            if dd.main:
                print(f"{desc}: early stop after epoch {epoch + 1} ({recipe.patience} epochs without improvement)")
            break
    summary = dict(best_val_acc=best_acc, best_epoch=best_epoch + 1, epochs_run=len(history),
                   seconds=elapsed_before + time.time() - t0, world_size=dd.world)
    if dd.main:
        save_checkpoint(ckpt, best_state, {**meta, "cut": "full", "best_epoch": best_epoch + 1,
                                           "val_acc": best_acc, "epochs_run": len(history)}, history=history)
        state_file.unlink(missing_ok=True)
    dd.barrier()
    net.load_state_dict(best_state)
    if dd.world > 1:
        digests = dd.gather_digests(state_digest(net.state_dict()), device)
        summary["ranks_agree"] = len(set(digests)) == 1
        if dd.main:
            print(f"{desc}: DDP final weights sha1 per rank: {' '.join(digests)} "
                  f"({'identical' if summary['ranks_agree'] else 'DIFFERENT: replicas diverged'})")
    return summary


def load_net(ckpt: Path, meta: dict, missing_hint: str):
    """Rebuild a CutNet from a checkpoint after checking it matches `meta` (dataset, model, classes...)."""
    from models import create_model
    from models.cutnet import load_weights
    obj = load_checkpoint(ckpt, expect={k: meta[k] for k in ("dataset", "model", "num_classes", "img_size")},
                          missing_hint=missing_hint)
    net = create_model(meta["model"], meta["num_classes"], meta["stem"], meta["img_size"])
    load_weights(net, obj["state_dict"], str(ckpt))
    return net.eval(), obj["meta"]

