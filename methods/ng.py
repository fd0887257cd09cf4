"""NG: gradient ascent on the forget data (minus cross-entropy); unbounded, so epoch selection matters."""

from core.logits import cross_entropy
from methods import register_method
from methods.base import Method


@register_method
class NG(Method):
    name, needs, driver = "NG", ("forget",), "forget"

    def loss(self, retain, forget, surrogate):
        x, y, _ = forget
        return -cross_entropy(self.tail(x), y)
