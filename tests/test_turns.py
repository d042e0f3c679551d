"""Loads in turns (nexus.training.turns): at most `at_once` ranks load together, every rank loads once."""
import threading
import time

import pytest

from nexus.training.turns import in_turns


@pytest.mark.parametrize("world,at_once", [(8, 2), (5, 2), (4, 0), (3, 8)])
def test_ranks_load_in_turns(world, at_once):
    barrier = threading.Barrier(world)
    lock, active, most, loaded = threading.Lock(), [0], [0], []

    def rank(r):
        def load():
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            time.sleep(0.05)                 # long enough for the ranks of one turn to overlap
            with lock:
                active[0] -= 1
                loaded.append(r)
            return r
        assert in_turns(load, r, world, at_once, barrier.wait) == r
    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(loaded) == list(range(world))
    expected = world if at_once <= 0 or at_once >= world else at_once
    assert most[0] == expected
