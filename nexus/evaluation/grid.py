"""The frames of a side-by-side grid video (nexus.evaluation.compare): each clip resized to one height, labelled,
padded or trimmed to one length, the columns joined; a folder without the prompt is a grey "missing" column."""
from __future__ import annotations

import numpy as np

GREY = 96


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)     # scalable with FreeType (Pillow >= 10.1)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)            # yuv420p needs even sizes


def resize(frames: np.ndarray, height: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, height, even W * height / H, 3): whole-number upscales repeat pixels (exact, sharp on
    tiny samples), other sizes use Lanczos."""
    t, h, w, _ = frames.shape
    width = even(w * height / h)
    if (h, w) == (height, width):
        return frames
    if height % h == 0 and width % w == 0 and height // h == width // w:
        k = height // h
        return frames.repeat(k, axis=1).repeat(k, axis=2)
    from PIL import Image
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.LANCZOS)) for f in frames])


def draw_label(frames: np.ndarray, text: str) -> np.ndarray:
    """White text on a black box in the top-left corner of every frame (drawn once, pasted into each)."""
    from PIL import Image, ImageDraw
    h, w = frames.shape[1:3]
    font = _font(max(10, h // 14))
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
    pad = max(2, h // 64)
    bw, bh = min(w, box[2] + 2 * pad), min(h, box[3] + 2 * pad)
    tile = Image.new("RGB", (bw, bh), (0, 0, 0))
    ImageDraw.Draw(tile).text((pad, pad), text, font=font, fill=(255, 255, 255))
    out = frames.copy()
    out[:, :bh, :bw] = np.asarray(tile)
    return out


def fit_length(frames: np.ndarray, length: int) -> np.ndarray:
    """Trim to `length` frames, or pad by holding the last frame."""
    if len(frames) >= length:
        return frames[:length]
    return np.concatenate([frames, np.repeat(frames[-1:], length - len(frames), axis=0)])


def grid(clips: list[np.ndarray | None], labels: list[str], height: int, frames: str = "longest",
         missing_width: list[int] | None = None) -> np.ndarray:
    """One (T, height, sum of column widths, 3) video: each clip resized to `height`, labelled, brought to a
    common length; None (a folder without this prompt) is a grey column saying so."""
    present = [c for c in clips if c is not None]
    length = (max if frames == "longest" else min)(len(c) for c in present)
    columns = []
    for i, (clip, label) in enumerate(zip(clips, labels)):
        if clip is None:
            width = (missing_width or [height] * len(clips))[i]
            col = draw_label(np.full((length, height, width, 3), GREY, np.uint8), f"{label}: missing")
        else:
            col = draw_label(fit_length(resize(clip, height), length), label)
        columns.append(col)
    return np.concatenate(columns, axis=2)
