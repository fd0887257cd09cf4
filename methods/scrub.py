"""SCRUB (Kurmanji et al., 2023), the published alternating variant.

Each epoch does a pass of min-steps on the retain data (alpha·KL(teacher ‖ student) at the
temperature + gamma·CE); during the first `msteps` epochs a pass of max-steps on the forget data
(maximise KL(teacher ‖ student)) runs before it."""

from core.logits import cross_entropy
from methods import register_method
from methods.base import Method, kd_loss


@register_method
class SCRUB(Method):
    name, needs, driver = "SCRUB", ("retain", "forget"), "retain"
    teacher_streams = ("retain", "forget")

    def setup(self, feeds):
        m = self.hp.msteps
        self.msteps = max(1, self.hp.epochs // 2) if m < 0 else m

    def train_epoch(self, feeds, epoch, step):
        import torch
        total = torch.zeros((), device=self.ctx.device)
        bs, g, T = self.hp.bsize, self.ctx.generator, self.hp.temperature
        if epoch < self.msteps:
            for x, _, i in feeds["forget"].batches(bs, shuffle=True, generator=g):
                loss = -kd_loss(self.tail(x), self.teacher_logits(x, i, "forget"), T)
                step(loss)
                total += loss.detach()
        for x, y, i in feeds["retain"].batches(bs, shuffle=True, generator=g):
            out = self.tail(x)
            loss = self.hp.alpha * kd_loss(out, self.teacher_logits(x, i, "retain"), T) + self.hp.gamma * cross_entropy(out, y)
            step(loss)
            total += loss.detach()
        return total
