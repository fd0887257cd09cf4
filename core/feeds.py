"""Data feeds: what unlearning and evaluation iterate over.

`TensorFeed` keeps embeddings (or synthetic samples) resident on the device: an epoch is one random
permutation split into batches, no DataLoader, no per-sample Python. `ImageFeed` wraps a DataLoader
for the stages that need images (the full setting). Both yield (x, y, i) with i the position of
each sample in the feed, so methods can keep per-sample state (SCAR's target classes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class TensorFeed:
    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        assert len(x) == len(y), (x.shape, y.shape)
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def targets(self) -> torch.Tensor:
        return self.y

    def subset(self, mask: torch.Tensor) -> TensorFeed:
        return TensorFeed(self.x[mask], self.y[mask])

    def with_targets(self, y: torch.Tensor) -> TensorFeed:
        """The same inputs with other labels (SCAR_self's pseudo-labels)."""
        return TensorFeed(self.x, y.to(self.x.device))

    def batches(self, bsize: int, shuffle: bool = False, generator: torch.Generator | None = None) -> Iterator[Batch]:
        n = len(self.y)
        if not shuffle:  # contiguous views, no copy (consumers only read a batch)
            for i in range(0, n, bsize):
                yield self.x[i:i + bsize], self.y[i:i + bsize], torch.arange(i, min(n, i + bsize), device=self.x.device)
            return
        order = torch.randperm(n, generator=generator).to(self.x.device, non_blocking=True)
        for idx in order.split(bsize):  # index_select: the same rows as x[idx], ~5x faster on CPU
            yield self.x.index_select(0, idx), self.y.index_select(0, idx), idx

    def num_batches(self, bsize: int) -> int:
        return -(-len(self.y) // bsize)


class _Indexed(Dataset):
    def __init__(self, ds: Dataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        x, y = self.ds[i]
        return x, y, i


class ImageFeed:
    """Images through a DataLoader, moved to `device` batch by batch (channels_last on CUDA).

    The labels a batch carries are `targets` (the data set's own, or pseudo-labels set by
    `with_targets`), so both feed kinds agree on what `targets` means."""

    def __init__(self, dataset: Dataset, targets: torch.Tensor, device: torch.device, num_workers: int = 0):
        self.dataset, self._targets, self.device, self.num_workers = dataset, targets, device, num_workers

    def __len__(self) -> int:
        return len(self._targets)

    @property
    def targets(self) -> torch.Tensor:
        return self._targets.to(self.device)

    def subset(self, mask: torch.Tensor) -> ImageFeed:
        idx = torch.nonzero(mask.cpu(), as_tuple=True)[0]
        return ImageFeed(torch.utils.data.Subset(self.dataset, idx.tolist()), self._targets[idx.cpu()],
                         self.device, self.num_workers)

    def with_targets(self, y: torch.Tensor) -> ImageFeed:
        """The same images with other labels (SCAR_self's pseudo-labels); batches yield these labels."""
        return ImageFeed(self.dataset, y.cpu(), self.device, self.num_workers)

    def batches(self, bsize: int, shuffle: bool = False, generator: torch.Generator | None = None) -> Iterator[Batch]:
        cuda = self.device.type == "cuda"
        loader = DataLoader(_Indexed(self.dataset), batch_size=bsize, shuffle=shuffle, generator=generator,
                            num_workers=self.num_workers, pin_memory=cuda,
                            persistent_workers=False)
        for x, _, i in loader:
            x = x.to(self.device, non_blocking=True)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self._targets[i].to(self.device, non_blocking=True), i.to(self.device, non_blocking=True)

    def num_batches(self, bsize: int) -> int:
        return -(-len(self._targets) // bsize)


Feed = TensorFeed | ImageFeed


@torch.inference_mode()
def predict(fn: Callable[[torch.Tensor], torch.Tensor], feed: Feed, bsize: int = 1024) -> torch.Tensor:
    """Outputs of `fn` over a whole feed, in feed order (N×C on the feed's device)."""
    outs = [fn(x) for x, _, _ in feed.batches(bsize)]
    return torch.cat(outs) if outs else torch.zeros(0)


def cycle(feed: Feed, bsize: int, generator: torch.Generator) -> Iterator[Batch]:
    """Endless reshuffled batches (the paired stream of a two-stream method)."""
    while True:
        yield from feed.batches(bsize, shuffle=True, generator=generator)
