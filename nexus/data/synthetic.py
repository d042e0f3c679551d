"""Deterministic procedural clips with captions: one coloured square or circle moving across, or bouncing
around, a plain background. Tiny, license-free data whose captions can be checked against the pixels; a
share of captions paraphrase the colour ("the colour of grass") so that following them needs a small
inference rather than a keyword match."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from nexus.data.video import encode_mp4

SHAPE_COLOURS = {"red": (220, 30, 30), "green": (40, 170, 60), "blue": (40, 90, 230),
                 "yellow": (240, 210, 40), "white": (240, 240, 240)}
BACKGROUNDS = {"black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128)}
PARAPHRASES = {"red": "the colour of a ripe tomato", "green": "the colour of grass",
               "blue": "the colour of a clear sky", "yellow": "the colour of a ripe banana",
               "white": "the colour of fresh snow"}
SHAPES = ("square", "circle")
# (phrase, axis, direction); "bounce" moves diagonally and reflects off the walls
MOTIONS = (("moves from left to right", 1, 1), ("moves from right to left", 1, -1),
           ("moves from top to bottom", 0, 1), ("moves from bottom to top", 0, -1),
           ("bounces off the walls", None, 0))
PARAPHRASE_RATE = 0.3


def _fold(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Unbounded positions -> positions in [lo, hi] reflected at both ends (a triangle wave): the closed
    form of a ball bouncing elastically between two walls."""
    span = hi - lo
    if span <= 0:
        return np.full_like(p, lo)
    u = np.mod(p - lo, 2 * span)
    return lo + np.where(u <= span, u, 2 * span - u)


def make_clip(seed: int, num_frames: int, height: int, width: int) -> tuple[np.ndarray, str]:
    """uint8 (num_frames, height, width, 3) clip and its caption; a pure function of its arguments."""
    if num_frames < 1 or height < 8 or width < 8:
        raise ValueError(f"need num_frames >= 1 and a frame of at least 8x8, got {num_frames}x{height}x{width}")
    rng = np.random.default_rng(seed)
    bg = str(rng.choice(list(BACKGROUNDS)))
    colour = str(rng.choice([c for c in SHAPE_COLOURS if c != bg]))
    shape = str(rng.choice(SHAPES))
    phrase, axis, direction = MOTIONS[rng.integers(len(MOTIONS))]
    paraphrase = rng.random() < PARAPHRASE_RATE

    r = max(2.0, min(height, width) * rng.uniform(0.12, 0.2))    # half-size of the square / circle radius
    lo, hi = np.array([r, r]), np.array([height - 1 - r, width - 1 - r])  # centre range keeping it inside
    t = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    if axis is None:
        start = rng.uniform(lo, hi)
        # travel 1.2-2 spans per axis over the clip so it hits at least one wall on each
        travel = rng.uniform(1.2, 2.0, size=2) * (hi - lo) * rng.choice([-1, 1], size=2)
        centres = np.stack([_fold(start[k] + travel[k] * t, lo[k], hi[k]) for k in range(2)], axis=1)
    else:
        centres = np.empty((num_frames, 2))
        other = 1 - axis
        centres[:, other] = rng.uniform(lo[other], hi[other])
        a, b = (lo[axis], hi[axis]) if direction > 0 else (hi[axis], lo[axis])
        centres[:, axis] = a + (b - a) * t

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    frames[:] = BACKGROUNDS[bg]
    for i, (cy, cx) in enumerate(centres):
        if shape == "square":
            mask = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
        else:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        frames[i][mask] = SHAPE_COLOURS[colour]

    subject = f"a {shape} {PARAPHRASES[colour]}" if paraphrase else f"a {colour} {shape}"
    return frames, f"{subject} {phrase} on a {bg} background"


def clip_seed(seed: int, i: int) -> int:
    """Seed of clip i of the set `seed`: hashed, so that sets with neighbouring seeds share no clips."""
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def synthetic_samples(n: int, num_frames: int, height: int, width: int, fps: int = 16,
                      seed: int = 0) -> Iterator[dict]:
    """n webdataset samples {"__key__", "mp4", "json"}, generated lazily."""
    for i in range(n):
        frames, caption = make_clip(clip_seed(seed, i), num_frames, height, width)
        yield {"__key__": f"{i:06d}", "mp4": encode_mp4(frames, fps),
               "json": {"caption": caption, "fps": fps, "num_frames": num_frames, "height": height,
                        "width": width}}
