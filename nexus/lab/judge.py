"""The shapes lab's judge: reads a scene's attributes back from the pixels (no learned model) and answers
VR-Bench-style weighted yes/no questions about a sample, plus a fidelity score.

Reading (`read`):
  background  the median colour of the image border, nearest palette background
  object      the pixels farther than 60 (RGB distance) from that background; its 4-connected components
              smaller than 2% of the image are specks, not objects
  count       the number of components left ("exactly one object")
  colour      the mean colour of the largest component, nearest palette colour; `mixed` when even that nearest
              colour is farther than 60 (two colours blended into one object)
  shape       the largest component's area over its bounding box: a square fills ~1, a circle pi/4 ~ 0.79, a
              triangle ~0.5 (thresholds 0.9 and 0.64)
  position    its centroid, nearest of the four anchor positions

Questions (`questions`, weights as VR-Bench's 1 and 2): exactly one object (1), right colour (2), right shape
(2), right position (1), right background (1); the score is the weighted share of Yes.

Fidelity (`fidelity`): the share of pixels within 40 (RGB distance) of a colour of the world's palette. A clean
render is exactly palette colours (1.0); blur mixes colours along the edges and noise moves every pixel, so both
score lower; random pixels almost never land near the palette. It measures how clean and flat the picture is,
not whether it matches the caption.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from nexus.lab.world import BACKGROUNDS, COLOURS, POSITIONS, Scene

QUESTIONS = (("one", "Is there exactly one object?", 1.0), ("colour", "Is the object the right colour?", 2.0),
             ("shape", "Is it the right shape?", 2.0), ("position", "Is it in the right place?", 1.0),
             ("background", "Is the background the right colour?", 1.0))
PALETTE = np.array([*COLOURS.values(), *BACKGROUNDS.values()], np.float32)


def _nearest(colour: np.ndarray, table: dict) -> tuple[str, float]:
    names = list(table)
    d = np.linalg.norm(np.array([table[n] for n in names], np.float32) - colour, axis=1)
    return names[int(d.argmin())], float(d.min())


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, as arrays of (y, x), largest first."""
    seen = np.zeros_like(mask, bool)
    h, w = mask.shape
    out = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        queue, pixels = deque([(y0, x0)]), []
        while queue:
            y, x = queue.popleft()
            pixels.append((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        out.append(np.array(pixels))
    return sorted(out, key=len, reverse=True)


def read(img: np.ndarray) -> dict:
    """uint8 (H, W, 3) -> {"background", "count", "colour", "shape", "position"}; None where there is no object."""
    img = img.astype(np.float32)
    h, w, _ = img.shape
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    background, _ = _nearest(np.median(border, axis=0), BACKGROUNDS)
    mask = np.linalg.norm(img - np.array(BACKGROUNDS[background], np.float32), axis=-1) > 60
    objects = [c for c in components(mask) if len(c) >= 0.02 * h * w]
    out = {"background": background, "count": len(objects), "colour": None, "shape": None, "position": None}
    if objects:
        obj = objects[0]
        colour, dist = _nearest(img[obj[:, 0], obj[:, 1]].mean(0), COLOURS)
        (y0, x0), (y1, x1) = obj.min(0), obj.max(0)
        fill = len(obj) / ((y1 - y0 + 1) * (x1 - x0 + 1))
        cy, cx = (obj.mean(0) + 0.5) / np.array([h, w])
        out.update(colour=colour if dist <= 60 else "mixed",
                   shape="square" if fill > 0.9 else "circle" if fill > 0.64 else "triangle",
                   position=min(POSITIONS, key=lambda p: (POSITIONS[p][0] - cy) ** 2 + (POSITIONS[p][1] - cx) ** 2))
    return out


def questions(reading: dict, scene: Scene) -> dict[str, bool]:
    return {"one": reading["count"] == 1, "colour": reading["colour"] == scene.colour,
            "shape": reading["shape"] == scene.shape, "position": reading["position"] == scene.position,
            "background": reading["background"] == scene.background}


def score(answers: dict[str, bool]) -> float:
    """The weighted share of Yes (VR-Bench's case score)."""
    return sum(w for q, _, w in QUESTIONS if answers[q]) / sum(w for *_, w in QUESTIONS)


def fidelity(img: np.ndarray) -> float:
    """Share of pixels within 40 of a palette colour (see the module docstring)."""
    d = np.linalg.norm(img.reshape(-1, 1, 3).astype(np.float32) - PALETTE[None], axis=-1).min(1)
    return float((d <= 40).mean())
