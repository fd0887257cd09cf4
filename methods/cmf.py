"""CMF (class-mean features): unlearning that moves the features, not only the head.

A method that only edits the classifier leaves the forget class as separable in the penultimate
features as before: a linear probe reads it back and a few steps of fine-tuning restore it (the
feature-classifier misalignment of "An Illusion of Unlearning?", arXiv 2604.08271, which proposes
classifiers built on class-mean features). Here the classifier is tied to the feature geometry:

- At setup, the original's class-mean features μ_c (its `features`, i.e. the head's input) are taken
  per class from the streams the method is given (retain: every retained class; forget: the removed
  ones), with the spread s = mean squared distance of a retain sample to its class mean. Each forget
  sample gets a fixed target: the retained class whose mean is nearest to its original feature (never
  its own class, in HR).
- Retain features are kept aligned with that geometry by a nearest-class-mean classifier over all
  classes, logits_c(f) = −‖f − μ_c‖² / s (means fixed; the removed classes' included, so a retain
  feature drifting toward the forgotten class's mean is penalised), trained toward their labels.
- Forget features are pulled onto their target's mean: ‖f − μ_t‖² / s. Only the features can lower these
  two terms: the forget samples leave their class for the target's cluster, the retain samples stay.
- The model's own head is trained jointly, by cross-entropy, on the same targets (retain: the label;
  forget: the target), so the classifier follows the features.
  loss = CE(head(f_r), y_r) + CE(head(f_f), t) + `align` · (CE(NCM(f_r), y_r) + ‖f_f − μ_t‖² / s).

In the fc setting the features are the fixed cached embeddings, so the class-mean terms are constant and
CMF reduces to a head-level method (retain cross-entropy + forget samples relabelled to the nearest
retained class mean).
"""

from __future__ import annotations

import torch

from core.feeds import Feed, predict
from core.logits import cross_entropy
from core.runtime import RunFailed
from methods import register_method
from methods.base import Method


def class_means(f: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(C×D means, C presence mask) of features `f` grouped by label `y` (a zero row for an absent class)."""
    counts = torch.bincount(y, minlength=num_classes)[:num_classes].to(f.dtype)
    sums = torch.zeros(num_classes, f.shape[1], device=f.device, dtype=f.dtype).index_add_(0, y, f)
    return sums / counts.clamp_min(1)[:, None], counts > 0


@register_method
class CMF(Method):
    name, needs, driver = "CMF", ("retain", "forget"), "retain"

    def setup(self, feeds: dict[str, Feed]) -> None:
        ctx = self.ctx
        with torch.no_grad():
            fr = predict(self.teacher.features, feeds["retain"]).flatten(1)
            ff = predict(self.teacher.features, feeds["forget"]).flatten(1)
            yr, yf = feeds["retain"].targets.to(fr.device), feeds["forget"].targets.to(fr.device)
            means_r, have_r = class_means(fr, yr, ctx.num_classes)
            means_f, have_f = class_means(ff, yf, ctx.num_classes)
            removed = torch.zeros(ctx.num_classes, dtype=torch.bool, device=fr.device)
            removed[list(ctx.forget_classes)] = True
            # the removed classes' means from the forget stream, every other class's from the retain stream
            self.means = torch.where(removed[:, None] & have_f[:, None], means_f, means_r)
            self.present = torch.where(removed, have_f, have_r)
            self.spread = (fr - self.means[yr]).pow(2).sum(1).mean().clamp_min(1e-12)
            allowed = have_r & ~removed
            if not allowed.any():
                raise RunFailed("CMF: no retained class has a sample in the retain stream to take its mean from")
            dist = torch.cdist(ff, self.means).pow(2)
            dist[:, ~allowed] = float("inf")
            dist[torch.arange(len(yf), device=yf.device), yf] = float("inf")  # HR: never the sample's own class
            self.targets = dist.argmin(1)

    def ncm_logits(self, f: torch.Tensor) -> torch.Tensor:
        """Nearest-class-mean logits −‖f − μ_c‖² / s; classes without a mean are never predicted."""
        d = (f.pow(2).sum(1, keepdim=True) - 2 * f @ self.means.T + self.means.pow(2).sum(1)[None]) / self.spread
        return (-d).masked_fill(~self.present[None], float("-inf"))

    def loss(self, retain, forget, surrogate):
        (xr, yr, _), (xf, _, idf) = retain, forget
        t = self.targets[idf]
        fr, ff = self.tail.features(xr).flatten(1), self.tail.features(xf).flatten(1)
        loss = cross_entropy(self.tail.head(fr), yr) + cross_entropy(self.tail.head(ff), t)
        if self.moves_features:  # fc: the class-mean terms are constants, left out
            pull = (ff - self.means[t]).pow(2).sum(1).mean() / self.spread
            loss = loss + self.hp.align * (cross_entropy(self.ncm_logits(fr), yr) + pull)
        return loss
