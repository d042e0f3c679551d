"""Minimal precompute: raw clip shards -> feature shards (normalised latents, UMT5 and VLM states) plus the
empty prompt's features in null.safetensors, so stage 1 can train with no VAE/UMT5/VLM in memory.
(The content-hashed, multi-GPU precompute of the data-pipeline issue writes the same member layout.)"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors

from nexus.data.datamodule import DecodedShards
from nexus.data.shards import ShardIndex, expand_shards, write_shards
from nexus.models.encoders import FrozenEncoders, save_null_features


@torch.no_grad()
def feature_samples(clips: DecodedShards, encoders: FrozenEncoders, batch_size: int = 4):
    for start in range(0, len(clips), batch_size):
        items = [clips[i] for i in range(start, min(start + batch_size, len(clips)))]
        latents = encoders.latents(torch.stack([s["video"] for s in items]))
        prompts = encoders.prompts([s["caption"] for s in items])
        for j, s in enumerate(items):
            tensors = {"latents": latents[j], "umt5": prompts["umt5"][j], "vlm": prompts["vlm"][j]}
            yield {"__key__": s["key"], "json": {"caption": s["caption"]},
                   "features.safetensors": save_safetensors({k: v.float().contiguous() for k, v in tensors.items()})}


def precompute_features(shards: str, encoders: FrozenEncoders, out_dir: str | Path, num_frames: int, height: int,
                        width: int, batch_size: int = 4, maxcount: int = 256) -> list[str]:
    clips = DecodedShards(ShardIndex(expand_shards(shards)), "raw", num_frames, height, width)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_null_features(out_dir / "null.safetensors", encoders.prompts([""]))
    (out_dir / "features.json").write_text(json.dumps({"num_frames": num_frames, "height": height, "width": width}))
    return write_shards(feature_samples(clips, encoders, batch_size), out_dir, maxcount=maxcount)
