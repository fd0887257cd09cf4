"""BS (boundary shrink): push each forget sample toward its nearest wrong class.

The paper finds that class with an adversarial step on the input; like the seed's FC version, this
takes the original model's runner-up class (highest logit outside the removed classes / own label),
which is the nearest wrong class in logit space and is the same in every cut."""

from core.logits import cross_entropy
from methods import register_method
from methods.base import Method


@register_method
class BS(Method):
    name, needs, driver, teacher_streams = "BS", ("forget",), "forget", ("forget",)

    def loss(self, retain, forget, surrogate):
        x, y, i = forget
        nearest = self.ctx.mask_forget_logits(self.teacher_logits(x, i, "forget"), y, float("-inf")).argmax(1)
        return cross_entropy(self.tail(x), nearest)
