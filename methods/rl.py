"""RL: cross-entropy on forget samples relabelled uniformly at random, each step anew, among the
retained classes (CR) or among the classes other than the sample's own (HR)."""

import torch

from core.logits import cross_entropy
from methods import register_method
from methods.base import Method


@register_method
class RL(Method):
    name, needs, driver = "RL", ("forget",), "forget"

    def setup(self, feeds):
        self.retained = self.ctx.retained_classes()

    def random_labels(self, y: torch.Tensor) -> torch.Tensor:
        g, C = self.ctx.generator, self.ctx.num_classes
        if self.ctx.class_removal:
            pick = torch.randint(len(self.retained), y.shape, generator=g).to(y.device)
            return self.retained[pick]
        return (y + torch.randint(1, C, y.shape, generator=g).to(y.device)) % C

    def loss(self, retain, forget, surrogate):
        x, y, _ = forget
        return cross_entropy(self.tail(x), self.random_labels(y))
