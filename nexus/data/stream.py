"""A deterministic, infinite, resumable stream of batches over a map-style dataset.

The global sample order is a pure function of (seed, len(dataset)): pass p visits
torch.randperm(len, seed + p), and the passes are concatenated into one infinite index sequence. Global
batch b of rank r takes positions ((b * world_size + r) * batch_size + j), j < batch_size, so ranks never
share a sample within a pass and batch b alone says where a resumed run stands.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils.data import IterableDataset, get_worker_info


class SampleStream(IterableDataset):
    """Yields rank `rank`'s batches start_batch, start_batch + 1, ... forever, each
    collate([dataset[i] for i in indices]). Meant for DataLoader(stream, batch_size=None): worker w of W
    yields only batches with (b - start_batch) % W == w, which the DataLoader's in-order round-robin over
    workers turns back into the same sequence as with no workers."""

    def __init__(self, dataset: Any, batch_size: int, collate: Callable[[list], Any], seed: int = 0,
                 shuffle: bool = True, rank: int = 0, world_size: int = 1, start_batch: int = 0):
        if len(dataset) == 0:
            raise ValueError("SampleStream needs a non-empty dataset")
        if batch_size < 1 or start_batch < 0:
            raise ValueError(f"need batch_size >= 1 and start_batch >= 0, got {batch_size}, {start_batch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.dataset, self.batch_size, self.collate = dataset, batch_size, collate
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self._pass, self._order = -1, None   # the one pass order held at a time

    def _order_of(self, p: int) -> torch.Tensor:
        if p != self._pass:
            n = len(self.dataset)
            self._order = (torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + p))
                           if self.shuffle else torch.arange(n))
            self._pass = p
        return self._order

    def batch_indices(self, b: int) -> list[int]:
        """Dataset indices of this rank's global batch b. Positions only grow with b, so iterating
        regenerates each pass's permutation once (a batch across a pass boundary just moves to the next)."""
        n = len(self.dataset)
        first = (b * self.world_size + self.rank) * self.batch_size
        return [int(self._order_of(q // n)[q % n]) for q in range(first, first + self.batch_size)]

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        w, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        b = self.start_batch + w
        while True:
            yield self.collate([self.dataset[i] for i in self.batch_indices(b)])
            b += num_workers
