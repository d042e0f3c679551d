"""A deterministic, infinite, resumable stream of batches over a map-style dataset.

The global sample order is a pure function of (seed, len(dataset)): pass p visits
torch.randperm(len, seed + p), and the passes are concatenated into one infinite index sequence. Global
batch b takes the next world_size * batch_size(b) positions; rank r gets the r-th slice of them, so ranks never
share a sample within a pass, every rank runs the same number of steps, and batch b alone says where a
resumed run stands.

Buckets (Open-Sora style, each a clip shape with its own batch size and a sampling weight): batch b's bucket
is drawn from a seeded sequence shared by all ranks, so a batch always has one shape on every rank.
A sample the dataset cannot produce (it returns None: corrupt, undecodable, too short) is replaced by the
sample a fixed hop further on, so batches keep their size; the batch dict reports the dataset indices whose
read failed under "failed_indices" (a replacement that fails too adds its own) and how many of the batch's
positions were replaced under "replaced".
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info


@dataclass(frozen=True)
class Bucket:
    num_frames: int
    height: int
    width: int
    batch_size: int
    weight: float = 1.0


class SampleStream(IterableDataset):
    """Yields rank `rank`'s batches start_batch, start_batch + 1, ... forever. Meant for
    DataLoader(stream, batch_size=None): worker w of W yields only batches with (b - start_batch) % W == w,
    which the DataLoader's in-order round-robin over workers turns back into the same sequence as with no
    workers. Each sample is dataset.fetch(i, bucket, position) when the dataset has `fetch` (the position
seeds per-sample randomness such as the clip start), else dataset[i] (no buckets then)."""

    def __init__(self, dataset: Any, batch_size: int, collate: Callable[[list], Any], seed: int = 0,
                 shuffle: bool = True, rank: int = 0, world_size: int = 1, start_batch: int = 0,
                 buckets: list[Bucket] | None = None, max_retries: int = 16):
        if len(dataset) == 0:
            raise ValueError("SampleStream needs a non-empty dataset")
        if batch_size < 1 or start_batch < 0:
            raise ValueError(f"need batch_size >= 1 and start_batch >= 0, got {batch_size}, {start_batch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if buckets is not None and (not buckets or any(b.batch_size < 1 or b.weight <= 0 for b in buckets)):
            raise ValueError("buckets need at least one entry, each with batch_size >= 1 and weight > 0")
        if buckets is not None and not hasattr(dataset, "fetch"):
            raise ValueError("buckets need a dataset with fetch(index, bucket, position)")
        self.dataset, self.batch_size, self.collate = dataset, batch_size, collate
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self.buckets, self.max_retries = buckets, max_retries
        # caches, each replaced whole by one assignment, so threads making batches (ThreadedStream) never see
        # half of one: the one pass order held at a time; the bucket index of each global batch and the first
        # global position of each batch, grown on demand
        self._order = (-1, None)
        self._buckets = (np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64))

    def _order_of(self, p: int) -> torch.Tensor:
        held, order = self._order
        if p != held:
            n = len(self.dataset)
            order = (torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + p))
                     if self.shuffle else torch.arange(n))
            self._order = (p, order)
        return order

    def _grow(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """The bucket sequence (one seeded generator, drawn in blocks) and positions, extended past batch b."""
        choices, starts = self._buckets
        while len(choices) <= b:
            k = len(choices) // 65536
            w = np.array([x.weight for x in self.buckets], dtype=np.float64)
            block = np.random.default_rng([self.seed, k]).choice(len(w), size=65536, p=w / w.sum())
            sizes = np.array([x.batch_size for x in self.buckets])[block] * self.world_size
            choices, starts = np.concatenate([choices, block]), np.concatenate([starts, starts[-1] + np.cumsum(sizes)])
            self._buckets = (choices, starts)
        return choices, starts

    def plan(self, b: int) -> tuple[Bucket | None, int, int]:
        """(bucket, this rank's first global position, batch size) of global batch b."""
        if self.buckets is None:
            return None, (b * self.world_size + self.rank) * self.batch_size, self.batch_size
        choices, starts = self._grow(b)
        bucket = self.buckets[int(choices[b])]
        return bucket, int(starts[b]) + self.rank * bucket.batch_size, bucket.batch_size

    def batch_indices(self, b: int) -> list[int]:
        """Dataset indices of this rank's global batch b (no replacement of bad samples)."""
        _, first, size = self.plan(b)
        n = len(self.dataset)
        return [int(self._order_of(q // n)[q % n]) for q in range(first, first + size)]

    def _fetch(self, q: int, bucket: Bucket | None) -> tuple[Any, list[int]]:
        """-> (the sample for position q, the dataset indices that failed on the way to it)."""
        n = len(self.dataset)
        failed = []
        for attempt in range(self.max_retries + 1):
            pos = q + attempt * 7919                 # a fixed hop: deterministic and away from this batch
            i = int(self._order_of(pos // n)[pos % n])
            item = self.dataset.fetch(i, bucket, pos) if hasattr(self.dataset, "fetch") else self.dataset[i]
            if item is not None:
                return item, failed
            failed.append(i)
        raise RuntimeError(f"{self.max_retries + 1} samples in a row could not be read around position {q}: "
                           f"the data looks broken (see the warnings above)")

    def batch(self, b: int) -> Any:
        """This rank's global batch b, collated: a function of b alone."""
        bucket, first, size = self.plan(b)
        fetched = [self._fetch(q, bucket) for q in range(first, first + size)]
        batch = self.collate([item for item, _ in fetched])
        if isinstance(batch, dict):
            batch["failed_indices"] = [i for _, failed in fetched for i in failed]
            batch["replaced"] = sum(bool(failed) for _, failed in fetched)
        return batch

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        w, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        b = self.start_batch + w
        while True:
            yield self.batch(b)
            b += num_workers


class ThreadedStream(IterableDataset):
    """The stream's batches in order, made by `threads` threads of this process, at most 2 x threads ahead (as
    DataLoader workers with prefetch_factor 2). For decoders that release the GIL (torchcodec): no process to
    hand a clip over to, so no copy into shared memory and nothing to unpickle (tools/bench_data.py measures
    both kinds of worker)."""

    def __init__(self, stream: SampleStream, threads: int):
        if threads < 1:
            raise ValueError(f"ThreadedStream needs threads >= 1, got {threads}")
        self.stream, self.threads = stream, threads

    def __iter__(self) -> Iterator[Any]:
        with ThreadPoolExecutor(self.threads, thread_name_prefix="nexus-data") as pool:
            pending: deque[Future] = deque()
            b = self.stream.start_batch
            try:
                while True:
                    while len(pending) < 2 * self.threads:
                        pending.append(pool.submit(self.stream.batch, b))
                        b += 1
                    yield pending.popleft().result()
            finally:                  # closed early (end of training, an error): drop what was not started
                for f in pending:
                    f.cancel()
