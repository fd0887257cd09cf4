"""NG: gradient ascent on the forget data (minus cross-entropy); unbounded, so epoch selection matters."""

import torch.nn.functional as F

from methods import register_method
from methods.base import Method


@register_method
class NG(Method):
    name, needs, driver = "NG", ("forget",), "forget"

    def loss(self, retain, forget, surrogate):
        x, y, _ = forget
        return -F.cross_entropy(self.tail(x), y)
