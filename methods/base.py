"""The method interface and the one training loop around it.

A method states which data streams it needs ("retain", "forget", "surrogate"), which stream defines
an epoch (`driver`), and the loss of one step. The loop (batches, optimiser, scheduler, per-epoch
evaluation, epoch selection, early stopping, NaN guard, timing) is `unlearn.run` and is written once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from core.feeds import Feed, TensorFeed, cycle, predict
from core.logits import log_softmax
from models.cutnet import Tail

STREAMS = ("retain", "forget", "surrogate")


@dataclass
class Context:
    """What every method may read: the task and the resolved hyperparameters."""

    num_classes: int
    forget_classes: tuple[int, ...]  # CR: the removed classes; HR: empty
    hp: SimpleNamespace  # lr, epochs, bsize, momentum, wd, scheduler, temperature, lambdas, extras
    device: torch.device
    generator: torch.Generator = field(default_factory=torch.Generator)
    # work that does not depend on the unlearned model, kept across the rows of one group (one process, one
    # original, one setting) under keys naming what it was computed from; empty for a row alone
    shared: dict = field(default_factory=dict)

    def reuse(self, space: str, key: tuple, make: Callable[[], torch.Tensor],
              max_bytes: int = 512 * 2**20) -> torch.Tensor:
        """`make()`, or the tensor it gave for the same `key` in an earlier row of the group (the same
        arithmetic on the same values, so the same bits). Each `space` keeps at most `max_bytes`, the
        least recently used going first."""
        memo = self.shared.setdefault(space, OrderedDict())
        if key in memo:
            memo.move_to_end(key)
            return memo[key]
        memo[key] = value = make()
        while len(memo) > 1 and sum(v.nbytes for v in memo.values()) > max_bytes:
            memo.popitem(last=False)
        return value

    @property
    def class_removal(self) -> bool:
        return bool(self.forget_classes)

    def retained_classes(self) -> torch.Tensor:
        keep = torch.ones(self.num_classes, dtype=torch.bool)
        keep[list(self.forget_classes)] = False
        return torch.nonzero(keep, as_tuple=True)[0].to(self.device)

    def mask_forget_logits(self, logits: torch.Tensor, y: torch.Tensor, value: float) -> torch.Tensor:
        """Set the removed classes' logits (CR) or each sample's own class (HR) to `value`."""
        out = logits.clone()
        if self.class_removal:
            out[:, list(self.forget_classes)] = value
        else:
            out[torch.arange(len(y), device=y.device), y] = value
        return out


def content_key(t: torch.Tensor) -> tuple:
    """Names a tensor by its values (shape, dtype, a hash of its bytes): equal keys, equal inputs."""
    a = t.detach().contiguous().cpu()
    return tuple(a.shape), str(a.dtype), hashlib.blake2b(a.reshape(-1).view(torch.uint8).numpy(), digest_size=16).digest()


class Method:
    name: str = ""
    needs: tuple[str, ...] = ("retain",)
    driver: str = "retain"
    optimizer: str = "sgd"  # or "adam"
    self_forget: bool = False  # surrogates include the forget set (SCAR_self finds it itself)
    # Per-class feature statistics (SCAR): `--scar_stats retain` feeds them the real retain set as the
    # extra stream "stats" (true labels, seed B's code); otherwise they come from the surrogates.
    class_stats: bool = False
    # The streams on whose batches the loss reads the original's outputs (`teacher_logits`).
    teacher_streams: tuple[str, ...] = ()

    def __init__(self, tail: Tail, teacher: Tail, ctx: Context):
        self.tail, self.teacher, self.ctx, self.hp = tail, teacher, ctx, ctx.hp
        self.teacher_tables: dict[str, torch.Tensor] = {}
        # whether training can move the features (partial, full); in fc they are the fixed input, so a
        # loss term on the features alone is a constant there
        self.moves_features = tail is not None and any(p.requires_grad for p in tail.body.parameters())

    # --- hooks a method may override -------------------------------------------------------------
    def setup(self, feeds: dict[str, Feed]) -> None:
        """Once, before the first epoch (teacher statistics, head surgery)."""

    def loss(self, retain: tuple | None, forget: tuple | None, surrogate: tuple | None) -> torch.Tensor:
        raise NotImplementedError

    def epoch_batches(self, feeds: dict[str, Feed], epoch: int) -> Iterator[dict]:
        """One epoch: every batch of the driver stream, paired with cycled batches of the others."""
        bs, g = self.hp.bsize, self.ctx.generator
        others = {k: cycle(feeds[k], bs, g) for k in self.needs if k != self.driver}
        for batch in feeds[self.driver].batches(bs, shuffle=True, generator=g):
            yield {self.driver: batch, **{k: next(it) for k, it in others.items()}}

    def train_epoch(self, feeds: dict[str, Feed], epoch: int, step) -> torch.Tensor:
        """Run one epoch; `step(loss)` applies the update. Returns the summed loss (a tensor, no sync)."""
        total = torch.zeros((), device=self.ctx.device)
        for batch in self.epoch_batches(feeds, epoch):
            loss = self.loss(**{k: batch.get(k) for k in STREAMS})
            step(loss)
            total += loss.detach()
        return total

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation forward (BE evaluates its pruned head)."""
        return self.tail(x)

    def result(self) -> Tail:
        """The model this method reports (BE: the pruned head)."""
        return self.tail

    def should_stop(self, metrics: dict) -> bool:
        return False

    def monitor(self, forget: Feed | None) -> Feed | None:
        """The forget set whose train accuracy is logged (and drives stop rules): the one the method uses."""
        return forget

    # --- helpers ---------------------------------------------------------------------------------
    def tabulate_teacher(self, feeds: dict[str, Feed]) -> None:
        """Before the first epoch: the original's outputs on every sample of each of `teacher_streams`
        whose inputs are fixed tensors (cached embeddings or cut inputs, synthetic samples), so that a
        step gathers its rows instead of running the frozen teacher again (in `partial`, a whole block
        per step). Image streams (the `full` setting) keep the forward per step."""
        for s in self.teacher_streams:
            if isinstance(feeds.get(s), TensorFeed):
                self.teacher_tables[s] = predict(self.teacher, feeds[s]).clone()  # clone: a normal tensor

    def teacher_outputs(self, feeds: dict[str, Feed], stream: str) -> torch.Tensor:
        """The original's outputs on the whole of `stream`: its table when there is one, else one pass."""
        table = self.teacher_tables.get(stream)
        return table if table is not None else predict(self.teacher, feeds[stream])

    @torch.no_grad()
    def teacher_logits(self, x: torch.Tensor, idx: torch.Tensor | None = None, stream: str | None = None) -> torch.Tensor:
        """The original's outputs on batch `x`: rows `idx` of `stream`'s table when there is one, else a forward."""
        table = self.teacher_tables.get(stream) if idx is not None else None
        return self.teacher(x) if table is None else table.index_select(0, idx)


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) on temperature-softened outputs, scaled by T² (Hinton et al.)."""
    t = temperature
    return F.kl_div(log_softmax(student / t), log_softmax(teacher / t), reduction="batchmean",
                    log_target=True) * t * t
