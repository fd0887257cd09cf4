"""BE (boundary expand): add a shadow output, train the forget samples into it, then drop it.

The tail's final linear layer gets one extra row; evaluation during training and the reported model
both use the pruned C-way head, so what is selected is what is evaluated."""

import torch

from core.logits import cross_entropy
from methods import register_method
from methods.base import Method
from models.cutnet import Classifier


@register_method
class BE(Method):
    name, needs, driver = "BE", ("forget",), "forget"

    def setup(self, feeds):
        old = self.tail.linear
        C = self.ctx.num_classes
        new = Classifier(old.in_features, C + 1, device=old.weight.device, dtype=old.weight.dtype).train(old.training)
        with torch.no_grad():
            new.weight[:C] = old.weight
            new.bias[:C] = old.bias
        self.tail.head[-1] = new

    def loss(self, retain, forget, surrogate):
        x, _, _ = forget
        shadow = torch.full((len(x),), self.ctx.num_classes, device=x.device, dtype=torch.long)
        return cross_entropy(self.tail(x), shadow)

    def logits(self, x):
        return self.tail(x)[:, : self.ctx.num_classes]

    def result(self):
        C, big = self.ctx.num_classes, self.tail.linear
        pruned = Classifier(big.in_features, C, device=big.weight.device, dtype=big.weight.dtype).train(big.training)
        with torch.no_grad():
            pruned.weight.copy_(big.weight[:C])
            pruned.bias.copy_(big.bias[:C])
        self.tail.head[-1] = pruned
        return self.tail
