"""A minimal stage-1 DataModule over webdataset shards: raw clips (mp4 + json caption) or precomputed
features (features.safetensors + json). Batches come from a deterministic, resumable SampleStream, so a
resumed run continues with the samples it had not yet seen. The full pipeline (fps sampling, buckets,
corrupt-sample accounting) plugs in behind the same batch format:

  raw:      {"video": (B, 3, T, H, W) float in [-1, 1], "caption": [str], "key": [str]}
  features: {"latents": (B, 16, F, h, w), "umt5": [(T_i, 4096)], "vlm": [(L_i, d)], "caption", "key"}
"""
from __future__ import annotations

import json

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from torch.utils.data import DataLoader

from nexus.data.shards import ShardIndex, expand_shards
from nexus.data.stream import SampleStream
from nexus.data.video import decode_mp4
from nexus.shapes import check_clip_shape

KINDS = ("raw", "features")


def resize_center_crop(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 (T, H0, W0, 3) -> float (3, T, height, width) in [-1, 1]: scale to cover, then centre crop."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()          # (T, 3, H0, W0)
    h0, w0 = x.shape[-2:]
    scale = max(height / h0, width / w0)
    size = (max(height, round(h0 * scale)), max(width, round(w0 * scale)))
    if size != (h0, w0):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    x = x[..., top: top + height, left: left + width]
    return (x / 127.5 - 1.0).clamp(-1, 1).permute(1, 0, 2, 3).contiguous()


class DecodedShards(torch.utils.data.Dataset):
    def __init__(self, index: ShardIndex, kind: str, num_frames: int, height: int, width: int):
        self.index, self.kind, self.shape = index, kind, (num_frames, height, width)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        s = self.index[i]
        meta = json.loads(s["json"]) if "json" in s else {}
        out = {"key": s["__key__"], "caption": meta.get("caption", "")}
        if self.kind == "raw":
            t, h, w = self.shape
            out["video"] = resize_center_crop(decode_mp4(s["mp4"], num_frames=t), h, w)
        else:
            feats = load_safetensors(s["features.safetensors"])
            out.update(latents=feats["latents"], umt5=feats["umt5"], vlm=feats["vlm"])
        return out


def collate(samples: list[dict]) -> dict:
    out = {"key": [s["key"] for s in samples], "caption": [s["caption"] for s in samples]}
    if "video" in samples[0]:
        out["video"] = torch.stack([s["video"] for s in samples])
    else:
        shapes = {tuple(s["latents"].shape) for s in samples}
        if len(shapes) > 1:
            raise ValueError(f"latents of one batch differ in shape {sorted(shapes)}: precompute one shape per "
                             f"shard set or use batch_size 1")
        out.update(latents=torch.stack([s["latents"] for s in samples]), umt5=[s["umt5"] for s in samples],
                   vlm=[s["vlm"] for s in samples])
    return out


class ShardDataModule(L.LightningDataModule):
    def __init__(self, shards: str | list[str], kind: str = "raw", num_frames: int = 81, height: int = 480,
                 width: int = 832, batch_size: int = 1, num_workers: int = 4, seed: int = 0, shuffle: bool = True):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"data.kind={kind!r}: choose one of {KINDS}")
        check_clip_shape(num_frames, height, width)
        self.shards, self.kind, self.shape = shards, kind, (num_frames, height, width)
        self.batch_size, self.num_workers, self.seed, self.shuffle = batch_size, num_workers, seed, shuffle
        self.urls = expand_shards(shards)      # fails here, before any model loads, if nothing matches
        self.dataset: DecodedShards | None = None

    def setup(self, stage: str) -> None:
        if self.dataset is None:
            index = ShardIndex(self.urls)
            if len(index) == 0:
                raise ValueError(f"data.shards={self.shards!r} hold no samples")
            self.dataset = DecodedShards(index, self.kind, *self.shape)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        # resume: the stream position is a function of the optimizer steps already taken
        start = trainer.global_step * trainer.accumulate_grad_batches if trainer else 0
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        stream = SampleStream(self.dataset, self.batch_size, collate, seed=self.seed, shuffle=self.shuffle,
                              rank=rank, world_size=world, start_batch=start)
        return DataLoader(stream, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)
