"""SampleStream: rank split, pass coverage, worker split and resumption."""
import itertools

import torch
from torch.utils.data import DataLoader

import pytest

from nexus.data.stream import Bucket, SampleStream


class Range:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


def as_list(samples):
    return list(samples)


def take(stream, k):
    return list(itertools.islice(iter(stream), k))


def test_two_ranks_partition_each_pass():
    n, bs = 24, 3
    per_pass = n // (2 * bs)                  # 4 batches per rank per pass
    ranks = [take(SampleStream(Range(n), bs, as_list, seed=5, rank=r, world_size=2), 3 * per_pass)
             for r in range(2)]
    for p in range(3):
        seen = [i for r in range(2) for batch in ranks[r][p * per_pass:(p + 1) * per_pass] for i in batch]
        assert sorted(seen) == list(range(n)), f"pass {p}"
    # shuffled, and each pass in a different order
    first = [i for b in ranks[0][:per_pass] for i in b]
    second = [i for b in ranks[0][per_pass:2 * per_pass] for i in b]
    assert first != sorted(first) and first != second


def test_matches_the_defined_global_order():
    n, bs, world = 10, 4, 2                   # batches straddle pass boundaries
    order = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(7 + p)) for p in range(6)])
    for r in range(world):
        got = take(SampleStream(Range(n), bs, as_list, seed=7, rank=r, world_size=world), 6)
        want = [[int(order[(b * world + r) * bs + j]) for j in range(bs)] for b in range(6)]
        assert got == want
    assert take(SampleStream(Range(5), 2, as_list, shuffle=False), 3) == [[0, 1], [2, 3], [4, 0]]


def test_no_duplicates_within_a_pass_when_not_divisible():
    n = 25
    seen = [i for r in range(2) for b in take(SampleStream(Range(n), 3, as_list, seed=1, rank=r, world_size=2), 4)
            for i in b]
    assert len(seen) == 24 and len(set(seen)) == 24


def test_workers_reproduce_zero_worker_order():
    stream = SampleStream(Range(23), 3, as_list, seed=2, rank=1, world_size=2, start_batch=1)
    want = take(stream, 10)
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    got = list(itertools.islice(loader, 10))
    assert got == want


def test_start_batch_is_the_tail():
    full = take(SampleStream(Range(17), 4, as_list, seed=3, rank=0, world_size=2), 12)
    for k in (1, 5, 9):
        resumed = take(SampleStream(Range(17), 4, as_list, seed=3, rank=0, world_size=2, start_batch=k), 12 - k)
        assert resumed == full[k:]


def test_threads_reproduce_zero_worker_order_and_stop_when_closed():
    import threading
    import time

    from nexus.data.stream import ThreadedStream

    class Fetch(Range):
        def fetch(self, i, bucket, position):
            return (i, bucket.num_frames) if bucket else i

    class Slow(Fetch):           # later samples finish first: the order must still be the stream's
        def fetch(self, i, bucket, position):
            time.sleep(0.002 * (23 - i))
            return super().fetch(i, bucket, position)
    for buckets in (None, [Bucket(5, 8, 8, 2, 1.0), Bucket(9, 8, 8, 1, 2.0)]):
        plain = SampleStream(Fetch(23), 3, as_list, seed=2, rank=1, world_size=2, start_batch=1, buckets=buckets)
        threaded = SampleStream(Slow(23), 3, as_list, seed=2, rank=1, world_size=2, start_batch=1, buckets=buckets)
        assert take(ThreadedStream(threaded, 3), 20) == take(plain, 20)      # 20 batches cross two passes
    it = iter(ThreadedStream(SampleStream(Slow(23), 2, as_list), 2))
    next(it)
    it.close()                   # end of training: the pool winds down, no thread left behind
    assert not [t for t in threading.enumerate() if t.name.startswith("nexus-data")]
    with pytest.raises(ValueError, match="threads >= 1"):
        ThreadedStream(SampleStream(Range(3), 1, as_list), 0)
