"""The shapes lab's world: one flat shape on a flat background, described by four attributes that can be read
back from the pixels (nexus.lab.judge), with two kinds of caption.

plain      names every attribute: "a blue circle at the top on a black background". The generators, the
           connector and stage 1 only ever see these.
reasoning  names one attribute by knowledge instead ("a circle the colour of a clear sky at the top on a black
           background"): nothing in the words says blue. Only the understanding model is taught what the
           paraphrases mean; in the lab it is the only source of that knowledge.

Scenes are split once, by attribute combination: the held-out combinations (`split`) never appear in any
training set, in either caption kind, so every test prompt is new to every network.
Images are single frames (num_frames=1, Wan's text-to-image path): the lab's VAE trains at ~0.2 s per batch of
8 at 64x64 on one frame but ~1.8 s on 9-frame clips on the 2-core CPU (docs/lab.md), so clips would not
fit the lab's time budget.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

COLOURS = {"red": (220, 30, 30), "green": (40, 170, 60), "blue": (40, 90, 230), "yellow": (240, 210, 40),
           "white": (240, 240, 240)}
BACKGROUNDS = {"black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128)}
SHAPES = ("square", "circle", "triangle")
POSITIONS = {"left": (0.5, 0.27), "right": (0.5, 0.73), "top": (0.27, 0.5), "bottom": (0.73, 0.5)}   # (y, x)
ATTRIBUTES = ("colour", "shape", "position", "background")

POSITION_WORDS = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
PARAPHRASES = {   # attribute -> value -> what a reasoning caption says instead
    "colour": {"red": "the colour of a ripe tomato", "green": "the colour of fresh grass",
               "blue": "the colour of a clear sky", "yellow": "the colour of a ripe banana",
               "white": "the colour of fresh snow"},
    "shape": {"square": "shape with four equal sides", "circle": "shape with no corners",
              "triangle": "shape with three corners"},
    "position": {"left": "on the side where reading starts", "right": "on the side where reading ends",
                 "top": "up where the sky is", "bottom": "down where the ground is"},
    "background": {"black": "the colour of coal", "white": "the colour of milk", "grey": "the colour of ash"},
}


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    position: str
    background: str

    def value(self, attribute: str) -> str:
        return getattr(self, attribute)


def all_scenes() -> list[Scene]:
    """Every valid combination (a white shape on a white background is not one): 168."""
    return [Scene(*c) for c in itertools.product(COLOURS, SHAPES, POSITIONS, BACKGROUNDS)
            if not (c[0] == "white" and c[3] == "white")]


def split(test_share: float = 0.15, seed: int = 0) -> tuple[list[Scene], list[Scene]]:
    """(train, test) scenes: a fixed random share of the combinations is held out from every training set,
    chosen so that every attribute value still occurs in training."""
    scenes = all_scenes()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(scenes))
    n_test = max(1, round(test_share * len(scenes)))
    test = [scenes[i] for i in order[:n_test]]
    train = [scenes[i] for i in order[n_test:]]
    for attribute in ATTRIBUTES:   # holds for the default split; a check, so another seed cannot silently break it
        missing = {s.value(attribute) for s in scenes} - {s.value(attribute) for s in train}
        if missing:
            raise ValueError(f"split(seed={seed}) leaves {attribute} {sorted(missing)} out of training; use another seed")
    return train, test


def plain_caption(s: Scene) -> str:
    return f"a {s.colour} {s.shape} {POSITION_WORDS[s.position]} on a {s.background} background"


def reasoning_caption(s: Scene, attribute: str) -> str:
    """The scene with `attribute` named by knowledge only."""
    para = PARAPHRASES[attribute][s.value(attribute)]
    subject = {"colour": f"a {s.shape} {para}", "shape": f"a {s.colour} {para}"}.get(attribute, f"a {s.colour} {s.shape}")
    where = para if attribute == "position" else POSITION_WORDS[s.position]
    bg = f"a background {para}" if attribute == "background" else f"a {s.background} background"
    return f"{subject} {where} on {bg}"


def render(s: Scene, size: int = 64, rng: np.random.Generator | None = None) -> np.ndarray:
    """uint8 (size, size, 3). With rng: the shape's size and place jitter a little (training variety); without:
    the canonical image (test references)."""
    r = size * (rng.uniform(0.15, 0.2) if rng is not None else 0.175)
    cy, cx = (np.array(POSITIONS[s.position]) + (rng.uniform(-0.04, 0.04, 2) if rng is not None else 0)) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if s.shape == "square":
        mask = (np.abs(yy - cy) <= r * 0.9) & (np.abs(xx - cx) <= r * 0.9)
    elif s.shape == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    else:   # upward triangle with its base at cy + r and apex at cy - r
        half = (yy - (cy - r)) / (2 * r) * r * 1.15
        mask = (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= half)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = BACKGROUNDS[s.background]
    img[mask] = COLOURS[s.colour]
    return img
