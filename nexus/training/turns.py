"""Heavy loads in turns: eight ranks of a node reading tens of GB of weights from shared storage at once contend
for the same disks and network; `at_once` local ranks load while the others wait at a barrier."""
from __future__ import annotations

import math
from typing import Callable, TypeVar

T = TypeVar("T")


def in_turns(load: Callable[[], T], local_rank: int, local_world: int, at_once: int,
             barrier: Callable[[], None]) -> T:
    """Run `load` on this rank in its turn (local ranks [k * at_once, (k + 1) * at_once) form turn k); every rank
    passes the same number of barriers, so ranks of all nodes stay in step. at_once <= 0: all at once."""
    if at_once <= 0 or at_once >= local_world:
        return load()
    out = None
    for turn in range(math.ceil(local_world / at_once)):
        if local_rank // at_once == turn:
            out = load()
        barrier()
    return out
