"""SCAR (Bonato et al., 2024): Mahalanobis pull of forget features + distillation on surrogates.

Class statistics: features of the original model (the tail's `features`, i.e. the classifier's
input), after the Tukey transform
sign(x)|x|^delta (sign-guarded for negative features such as ViT tokens) and L2 normalisation.
Per retained class: mean and covariance, shrunk as Σ + γ1·v1·I + γ2·v2·(1−I) (v1 mean diagonal,
v2 mean non-zero off-diagonal), turned into a correlation matrix and pseudo-inverted. Their source
(`--scar_stats`): `retain`, the real retain set grouped by its true labels (seed B's code: the
`stats` stream), or `surrogate`, the surrogate inputs grouped by the original's prediction: the
source's retain embeddings (real source), synthetic embeddings (synthetic source, hence
source-free), or out-of-distribution images (full setting).

Forget loss: λ1 × squared Mahalanobis distance from each forget sample's transformed feature to
its target: the nearest retained class, fixed once before the first epoch. Retain loss: λ2 ×
KL(teacher ‖ student) at the temperature on the surrogates; in class removal, surrogates the teacher
assigns to a removed class are dropped and the removed logits are set to the batch minimum.
Adam, no scheduler; stops once train-forget accuracy is below 1% (CR). In the fc setting the features
are the cached embeddings themselves, so the forget loss is a constant: it moves no weight (SCAR in fc
forgets through the masked distillation alone), and it is computed once per forget sample, not per step.
`SCAR_self`: no forget set; surrogates the teacher assigns to a removed class are the forget set.
"""

from __future__ import annotations

import torch

from core.feeds import Feed, TensorFeed, cycle, predict
from core.runtime import RunFailed, UserError
from methods import register_method
from methods.base import Method, content_key, kd_loss


def tukey(f: torch.Tensor, delta: float) -> torch.Tensor:
    z = f.sign() * f.abs().clamp_min(1e-12).pow(delta)
    return torch.nn.functional.normalize(z.flatten(1), dim=1)


def shrunk_precision(z: torch.Tensor, gamma1: float, gamma2: float) -> torch.Tensor:
    """Pseudo-inverse of the shrunk correlation matrix of rows `z` (n×D)."""
    cov = torch.cov(z.T) if len(z) > 1 else torch.zeros(z.shape[1], z.shape[1], device=z.device)
    eye = torch.eye(len(cov), device=cov.device, dtype=cov.dtype)
    v1 = cov.diagonal().mean()
    off = cov * (1 - eye)
    nz = off != 0
    v2 = off.sum() / nz.sum().clamp_min(1)
    cov = cov + gamma1 * v1 * eye + gamma2 * v2 * (1 - eye)
    sd = cov.diagonal().clamp_min(1e-12).sqrt()
    corr = cov / torch.outer(sd, sd)
    return torch.linalg.pinv(corr, hermitian=True)


@register_method
class SCAR(Method):
    name, needs, driver, optimizer = "SCAR", ("forget", "surrogate"), "surrogate", "adam"
    class_stats, teacher_streams = True, ("surrogate",)

    @torch.no_grad()
    def _features(self, feed: Feed) -> tuple[torch.Tensor, torch.Tensor]:
        feats = predict(self.teacher.features, feed, 1024)
        logits = predict(self.teacher.head, TensorFeed(feats, torch.zeros(len(feats), device=feats.device)), 4096)
        return tukey(feats, self.hp.delta), logits

    def setup(self, feeds: dict[str, Feed]) -> None:
        self.prepare(feeds["surrogate"], feeds["forget"], feeds.get("stats"))

    def prepare(self, surrogate: Feed, forget: Feed, stats: Feed | None = None) -> None:
        """Class statistics from `stats` (real retain data, true labels) when given, else from the
        surrogates grouped by the original's prediction; a fixed target class for every forget sample."""
        hp, ctx = self.hp, self.ctx
        with torch.no_grad():
            if stats is not None:
                zs, _ = self._features(stats)
                pred = stats.targets.to(zs.device)
            else:
                zs, ls = self._features(surrogate)
                pred = ls.argmax(1)
            # the removed classes as a tensor on the device, made once (the retain loss reads it every step)
            self.removed = torch.tensor(ctx.forget_classes, dtype=torch.long, device=ctx.device)
            keep = ~torch.isin(pred, self.removed.to(pred))
            self.means, precisions, classes = {}, {}, []
            for c in pred[keep].unique().tolist():
                zc = zs[pred == c]
                if len(zc) >= 2:
                    self.means[c] = zc.mean(0)
                    # the same rows give the same matrix: rows of one group (another forget class, the same
                    # surrogates) reuse it instead of pseudo-inverting a D×D matrix per class again
                    precisions[c] = ctx.reuse("SCAR precision", (content_key(zc), hp.gamma1, hp.gamma2),
                                              lambda zc=zc: shrunk_precision(zc, hp.gamma1, hp.gamma2))
                    classes.append(c)
            if not classes:
                raise RunFailed(f"SCAR: no retained class has two or more {'retain' if stats is not None else 'surrogate'} "
                                f"samples to estimate statistics")
            zf, _ = self._features(forget)
            yf = forget.targets.to(zf.device)
            dist = torch.stack([self._mahalanobis(zf, c, precisions[c]) for c in classes], 1)
            own = torch.tensor(classes, device=zf.device)[None] == yf[:, None]
            dist[own] = float("inf")  # in HR the nearest class must differ from the sample's own
            pick = dist.argmin(1)
            self.targets = torch.tensor(classes, device=zf.device)[pick]
            self.precisions = {c: precisions[c] for c in self.targets.unique().tolist()}
            # fc: the features are the (fixed) input, so each forget sample's distance to its target is a
            # constant without gradient; computed once here instead of at every step
            self.fixed_pull = None if self.moves_features else dist.gather(1, pick[:, None])[:, 0]

    def _mahalanobis(self, z: torch.Tensor, c: int, prec: torch.Tensor) -> torch.Tensor:
        d = z - self.means[c]
        return ((d @ prec) * d).sum(1)

    def forget_loss(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.fixed_pull is not None:  # fc: a constant (the same value, no gradient either way)
            return self.fixed_pull[idx].sum() / len(x)
        z = tukey(self.tail.features(x), self.hp.delta)
        t = self.targets[idx]
        loss = z.new_zeros(())
        for c in t.unique().tolist():
            m = t == c
            loss = loss + self._mahalanobis(z[m], c, self.precisions[c]).sum()
        return loss / len(x)

    def retain_loss(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        teacher = self.teacher_logits(x, idx, "surrogate")
        if self.ctx.class_removal:
            keep = torch.nonzero(~torch.isin(teacher.argmax(1), self.removed), as_tuple=True)[0]
            teacher = teacher.index_fill(1, self.removed, teacher.min())
            if len(keep) == 0:
                return teacher.new_zeros(())
            # index_select: the same rows as boolean indexing, several times faster on CPU
            x, teacher = x.index_select(0, keep), teacher.index_select(0, keep)
        return kd_loss(self.tail(x), teacher, self.hp.temperature)

    def loss(self, retain, forget, surrogate):
        xf, _, idf = forget
        xs, _, ids = surrogate
        return self.hp.lambda_1 * self.forget_loss(xf, idf) + self.hp.lambda_2 * self.retain_loss(xs, ids)

    def should_stop(self, metrics: dict) -> bool:
        return self.ctx.class_removal and metrics.get("train_forget_acc", 1.0) < 0.01


@register_method
class SCAR_self(SCAR):
    """No forget set: the surrogates the original assigns to a removed class stand in for it."""

    name, needs, self_forget = "SCAR_self", ("surrogate",), True

    def setup(self, feeds: dict[str, Feed]) -> None:
        if not self.ctx.class_removal:
            raise UserError("SCAR_self is defined for class removal (--mode CR) only")
        sur = feeds["surrogate"]
        pred = self.teacher_outputs(feeds, "surrogate").argmax(1)  # the table, not a second pass
        mask = torch.isin(pred, torch.tensor(self.ctx.forget_classes, device=pred.device))
        if not mask.any():
            raise RunFailed("SCAR_self: the original assigns no surrogate sample to the removed class(es)")
        self.pseudo_forget = sur.subset(mask)
        if isinstance(self.pseudo_forget, TensorFeed):
            self.pseudo_forget = TensorFeed(self.pseudo_forget.x, pred[mask])
        self.prepare(sur, self.pseudo_forget, feeds.get("stats"))

    def monitor(self, forget):
        return self.pseudo_forget

    def epoch_batches(self, feeds, epoch):
        bs, g = self.hp.bsize, self.ctx.generator
        fgt = cycle(self.pseudo_forget, bs, g)
        for batch in feeds["surrogate"].batches(bs, shuffle=True, generator=g):
            yield {"surrogate": batch, "forget": next(fgt)}
