"""The one unlearning loop: every method, every cut, every source.

    outcome = run(method, feeds, monitor, evaluate, select)
Before the first epoch, the method's teacher tables (`Method.tabulate_teacher`), then its `setup`.
Per epoch: the method's pass over its streams, the scheduler step, an evaluation (`evaluate`
returns the selection score and the logged metrics), epoch selection (the best score's weights are
kept and returned, so the reported model is the selected one), early stopping (--patience, or the
method's own rule), and a NaN guard (a non-finite loss stops the run and restores the last good
weights). Only the steps count towards `seconds`, not the per-epoch evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from core.feeds import Feed, predict
from core.runtime import progress
from engine.training import Stepper, make_optimizer, make_scheduler
from evaluation.metrics import accuracy
from methods.base import Method
from models.cutnet import Tail


@dataclass
class Outcome:
    tail: Tail
    best_epoch: int  # 1-based; 0 = no epoch improved on nothing (never happens with a finite score)
    epochs_run: int
    seconds: float  # setup + steps, the unlearning itself
    stop_reason: str
    log: list[dict] = field(default_factory=list)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _snapshot(tail: Tail) -> dict:
    return {k: v.detach().clone() for k, v in tail.state_dict().items()}


def run(method: Method, feeds: dict[str, Feed], monitor: Feed | None,
        evaluate: Callable[[Callable[[torch.Tensor], torch.Tensor], dict], dict], select: str,
        desc: str = "unlearn", bar: bool = True) -> Outcome:
    """`evaluate(logits_fn, metrics)` adds val/test metrics and a 'score' (higher is better) to `metrics`,
    optionally a 'tiebreak' (higher is better) that decides between epochs of equal score.

    `monitor` is the forget set the method is told about (real or synthetic train-forget), used for
    the logged train-forget accuracy and SCAR's stopping rule, never for selection by itself."""
    hp, device = method.hp, method.ctx.device
    tail = method.tail
    tail.eval()  # BatchNorm statistics frozen, dropout off: only weights move
    _sync(device)
    t0 = time.perf_counter()
    method.tabulate_teacher(feeds)
    method.setup(feeds)
    monitor = method.monitor(monitor)
    opt = make_optimizer([p for p in tail.parameters() if p.requires_grad], method.optimizer, hp.lr, hp.momentum, hp.wd)
    sched = make_scheduler(opt, hp.scheduler, hp.epochs)

    step = Stepper(opt)
    _sync(device)
    seconds = time.perf_counter() - t0
    streams = {k: feeds[k] for k in method.needs}
    n_batches = max(1, streams[method.driver].num_batches(hp.bsize)) if method.driver in streams else 1
    best_score, best_state, best_epoch, last_good = (-math.inf, -math.inf), None, 0, _snapshot(tail)
    bad, log, reason = 0, [], "completed"
    bar = progress(range(hp.epochs), desc=desc, disable=not bar)
    for epoch in bar:
        t = time.perf_counter()
        total = method.train_epoch(streams, epoch, step)
        sched.step()
        _sync(device)
        seconds += time.perf_counter() - t
        loss = total.item() / n_batches
        if not math.isfinite(loss):
            tail.load_state_dict(last_good)
            reason = f"non-finite loss at epoch {epoch + 1}; kept the weights of epoch {epoch}"
            print(f"{desc}: {reason}")
            break
        last_good = _snapshot(tail)
        row = {"epoch": epoch + 1, "loss": loss, "lr": opt.param_groups[0]["lr"]}
        if monitor is not None and len(monitor):
            row["train_forget_acc"] = accuracy(predict(method.logits, monitor), monitor.targets)
        evaluate(method.logits, row)
        row["seconds"] = seconds
        log.append(row)
        score = (row["score"], row.get("tiebreak", 0.0)) if select != "last" else (epoch, 0.0)
        if score > best_score:
            best_score, best_epoch, bad = score, epoch + 1, 0
            best_state = last_good
        else:
            bad += 1
        bar.set_postfix(loss=f"{loss:.3f}", score=f"{row.get('score', 0.0):.3f}", refresh=False)
        if method.should_stop(row):
            reason = f"method stop rule at epoch {epoch + 1}"
            break
        if hp.patience and bad >= hp.patience:
            reason = f"early stop: no improvement for {hp.patience} epochs"
            break
    if best_state is not None:
        tail.load_state_dict(best_state)
    return Outcome(method.result(), best_epoch, len(log), seconds, reason, log)
