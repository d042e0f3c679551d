"""The shapes lab's data: training shards of plain captions (the generators and stage 1 read them through the
framework's DataModule) and the held-out test prompts (tools/sample.py reads them)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from nexus.data.shards import write_shards
from nexus.data.video import atomic_write, encode_mp4
from nexus.lab.world import ATTRIBUTES, Scene, plain_caption, reasoning_caption, render

FPS = 16


def training_samples(scenes: list[Scene], per_scene: int, size: int, seed: int):
    """per_scene jittered single-frame renders of every scene, with its plain caption only, in a shuffled order."""
    rng = np.random.default_rng(seed)
    order = [(i, k) for i in range(len(scenes)) for k in range(per_scene)]
    for n, j in enumerate(rng.permutation(len(order))):
        i, k = order[j]
        s = scenes[i]
        img = render(s, size, np.random.default_rng([seed, i, k]))
        yield {"__key__": f"{n:07d}", "mp4": encode_mp4(img[None], FPS),
               "json": {"caption": plain_caption(s), "fps": FPS, "num_frames": 1, "height": size, "width": size,
                        "scene": asdict(s)}}


def write_training_shards(out: Path, scenes: list[Scene], per_scene: int, size: int, seed: int) -> list[str]:
    return write_shards(training_samples(scenes, per_scene, size, seed), out, maxcount=512)


def test_prompts(scenes: list[Scene]) -> list[dict]:
    """Per held-out scene: its plain caption and one reasoning caption per attribute, with what the judge checks."""
    rows = []
    for i, s in enumerate(scenes):
        rows.append({"id": f"s{i:03d}_plain", "prompt": plain_caption(s), "kind": "plain", "attribute": None,
                     "scene": asdict(s)})
        rows += [{"id": f"s{i:03d}_{a}", "prompt": reasoning_caption(s, a), "kind": "reasoning", "attribute": a,
                  "scene": asdict(s)} for a in ATTRIBUTES]
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with atomic_write(path) as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows).encode())


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
