"""DELETE: distil the original's outputs on the forget data with the removed logits masked out
(set to a very large negative value before the softmax), so the student keeps the original's
"dark knowledge" among the remaining classes while the removed class gets no mass. The loss is
KL(masked teacher ‖ student) at `--temperature`; cosine learning-rate schedule by default."""

from methods import register_method
from methods.base import Method, kd_loss


@register_method
class DELETE(Method):
    name, needs, driver, teacher_streams = "DELETE", ("forget",), "forget", ("forget",)

    def loss(self, retain, forget, surrogate):
        x, y, i = forget
        masked = self.ctx.mask_forget_logits(self.teacher_logits(x, i, "forget"), y, -1e9)
        return kd_loss(self.tail(x), masked, self.hp.temperature)
