"""Synthetic clips that cost what real footage costs to decode: a textured scene (colour noise summed over
octaves, a 1/f-like spectrum as in natural images) seen by a camera that pans and zooms, two textured objects
moving across it, and per-frame sensor grain; encoded with libx264 at CRF 20. Measured at 81x480x832, 16 fps:
3.1 MB per clip (4.9 Mbit/s) and 2.9 clips/s through a bare single-thread PyAV decode on the 2-core dev machine.
The shapes clips of nexus.data.synthetic are flat colours: 0.033 MB per clip, decoded at 16 clips/s, so they
flatter a loader (issue #15)."""
from __future__ import annotations

import numpy as np
from PIL import Image

FOOTAGE_CRF = 20          # with GRAIN: ~5 Mbit/s at 480p (CRF 23 and grain 3 gave 0.22 MB, x264 smoothing it away)
GRAIN = 6.0               # std of the per-frame sensor noise, in 8-bit levels


def _texture(rng: np.random.Generator, height: int, width: int, octaves: int = 6) -> np.ndarray:
    """float32 (height, width, 3) in [0, 255]: coloured value noise, octave k weighted 2^-k x 0.8 (a 1/f-like
    falloff), each octave a bicubic upsampling of a small random image."""
    out = np.zeros((height, width, 3), np.float32)
    for k in range(octaves):
        cells = 2 ** (k + 2)
        small = rng.random((cells, max(2, cells * width // height), 3)).astype(np.float32) * 255
        layer = np.asarray(Image.fromarray(small.astype(np.uint8)).resize((width, height), Image.BICUBIC), np.float32)
        out += layer * (0.8 ** k)
    out -= out.min()
    return out * (255.0 / max(float(out.max()), 1e-6))


def footage_clip(seed: int, num_frames: int, height: int, width: int) -> np.ndarray:
    """uint8 (num_frames, height, width, 3): a pure function of its arguments."""
    rng = np.random.default_rng(seed)
    scene = _texture(rng, 2 * height, 2 * width)             # the camera sees a window of a larger scene
    objects = [(_texture(rng, height // 4, width // 5), rng.uniform(0, 1, 2), rng.uniform(-0.6, 0.6, 2))
               for _ in range(2)]
    pan = rng.uniform(-0.5, 0.5, 2) * np.array([height, width])       # pixels over the clip
    zoom = rng.uniform(1.0, 1.15)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for i in range(num_frames):
        t = i / max(num_frames - 1, 1)
        scale = 1 + (zoom - 1) * t
        h, w = int(height * scale), int(width * scale)
        y = int(height / 2 + pan[0] * t)
        x = int(width / 2 + pan[1] * t)
        view = Image.fromarray(scene[y:y + h, x:x + w].astype(np.uint8)).resize((width, height), Image.BILINEAR)
        frame = np.asarray(view, np.float32).copy()
        for tex, start, velocity in objects:
            oh, ow = tex.shape[:2]
            cy, cx = ((start + velocity * t) % 1.0) * np.array([height - oh, width - ow])
            frame[int(cy):int(cy) + oh, int(cx):int(cx) + ow] = tex
        frame += rng.normal(0.0, GRAIN, frame.shape).astype(np.float32)
        frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def footage_samples(n: int, num_frames: int, height: int, width: int, fps: int = 16, seed: int = 0):
    """n webdataset samples {"__key__", "mp4", "json"} of footage-like clips, laid out as
    nexus.data.synthetic.synthetic_samples lays out its own (for tools/bench_data.py)."""
    from nexus.data.video import encode_mp4
    for i in range(n):
        frames = footage_clip(seed * 100_003 + i, num_frames, height, width)
        yield {"__key__": f"{i:06d}", "mp4": encode_mp4(frames, fps, crf=FOOTAGE_CRF),
               "json": {"caption": "A camera pans across a textured scene while two objects move.", "fps": fps,
                        "num_frames": num_frames, "height": height, "width": width}}
