"""FT: fine-tune on the retain data only; forgetting comes from catastrophic forgetting."""

from core.logits import cross_entropy
from methods import register_method
from methods.base import Method


@register_method
class FT(Method):
    name, needs, driver = "FT", ("retain",), "retain"

    def loss(self, retain, forget, surrogate):
        x, y, _ = retain
        return cross_entropy(self.tail(x), y)
