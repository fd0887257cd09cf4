"""NGFTW (NG+): alpha·CE(retain) − (1−alpha)·CE(forget), retain batches paired with cycled forget ones."""

from core.logits import cross_entropy
from methods import register_method
from methods.base import Method


@register_method
class NGFTW(Method):
    name, needs, driver = "NGFTW", ("retain", "forget"), "retain"

    def loss(self, retain, forget, surrogate):
        (xr, yr, _), (xf, yf, _) = retain, forget
        a = self.hp.alpha
        return a * cross_entropy(self.tail(xr), yr) - (1 - a) * cross_entropy(self.tail(xf), yf)
