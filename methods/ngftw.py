"""NGFTW (NG+): alpha·CE(retain) − (1−alpha)·CE(forget), retain batches paired with cycled forget ones."""

import torch.nn.functional as F

from methods import register_method
from methods.base import Method


@register_method
class NGFTW(Method):
    name, needs, driver = "NGFTW", ("retain", "forget"), "retain"

    def loss(self, retain, forget, surrogate):
        (xr, yr, _), (xf, yf, _) = retain, forget
        a = self.hp.alpha
        return a * F.cross_entropy(self.tail(xr), yr) - (1 - a) * F.cross_entropy(self.tail(xf), yf)
