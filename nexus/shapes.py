"""Clip shapes the Wan VAE and transformer accept without silently dropping frames or pixels."""
from __future__ import annotations


def check_clip_shape(num_frames: int, height: int, width: int, temporal: int = 4, spatial: int = 8,
                     patch: int = 2, where: str = "data", keys: tuple[str, str, str] | None = None) -> None:
    """Refuse shapes diffusers would truncate: frames must be 4k+1, sizes multiples of 8*2 = 16. The message
    names the keys `<where>.num_frames|height|width`, or `keys` (e.g. a tool's --frames, --height, --width)."""
    keys = keys or (f"{where}.num_frames", f"{where}.height", f"{where}.width")
    problems = []
    if num_frames < 1 or (num_frames - 1) % temporal:
        k = max(0, (num_frames - 1) // temporal)
        problems.append(f"{keys[0]}={num_frames} is not {temporal}k+1 (the VAE would drop frames); "
                        f"use {temporal * k + 1} or {temporal * (k + 1) + 1}")
    mult = spatial * patch
    for key, v in ((keys[1], height), (keys[2], width)):
        if v < mult or v % mult:
            problems.append(f"{key}={v} is not a multiple of {mult} (the latent would be truncated); "
                            f"use {max(mult, v // mult * mult)} or {(v // mult + 1) * mult}")
    if problems:
        raise ValueError("; ".join(problems))


def latent_shape(num_frames: int, height: int, width: int, z_dim: int = 16, temporal: int = 4,
                 spatial: int = 8) -> tuple[int, int, int, int]:
    return z_dim, (num_frames - 1) // temporal + 1, height // spatial, width // spatial


def latent_tokens(num_frames: int, height: int, width: int, patch: tuple[int, int, int] = (1, 2, 2)) -> int:
    _, f, h, w = latent_shape(num_frames, height, width)
    return (f // patch[0]) * (h // patch[1]) * (w // patch[2])
