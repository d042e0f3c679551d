"""Which frames make a training clip: num_frames (4k+1) at a target fps from a random or fixed start."""
from __future__ import annotations

import random

STARTS = ("random", "fixed")


def clip_indices(total: int, num_frames: int, src_fps: float | None = None, target_fps: float | None = None,
                 start: str = "random", rng: random.Random | None = None) -> list[int] | None:
    """Frame indices into a video of `total` frames, or None when it is too short for the clip.

    The stride src_fps / target_fps resamples time (e.g. 30 fps -> 16 fps: every 1.875th frame); without
    both fps the clip takes consecutive frames. "fixed" starts at frame 0, "random" anywhere it still fits."""
    if start not in STARTS:
        raise ValueError(f"data.start={start!r}: choose one of {STARTS}")
    stride = src_fps / target_fps if src_fps and target_fps else 1.0
    span = (num_frames - 1) * stride
    room = total - 1 - span
    if room < 0:
        return None
    first = (rng or random.Random(0)).uniform(0, room) if start == "random" else 0.0
    return [min(total - 1, round(first + k * stride)) for k in range(num_frames)]
