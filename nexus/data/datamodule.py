"""A minimal stage-1 DataModule over webdataset shards: raw clips (mp4 + json caption) or precomputed
features (features.safetensors + json). Batches come from a deterministic, resumable SampleStream, so a
resumed run continues with the samples it had not yet seen. The full pipeline (fps sampling, buckets,
corrupt-sample accounting) plugs in behind the same batch format:

  raw:      {"video": uint8 (B, T, H, W, 3) from the loader, float (B, 3, T, H, W) in [-1, 1] on the device,
             "caption": [str], "key": [str]}
  features: {"latents": (B, 16, F, h, w), "umt5": [(T_i, 4096)], "vlm": [(L_i, d)], "caption", "key"}
"""
from __future__ import annotations

import json
import logging
import random

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from torch.utils.data import DataLoader, get_worker_info

from nexus.data.clips import STARTS, clip_indices
from nexus.data.shards import ShardIndex, expand_shards
from nexus.data.stream import Bucket, SampleStream
from nexus.data.video import decode_mp4, iter_frames
from nexus.errors import RunStopped
from nexus.models.codec import to_model_video
from nexus.shapes import check_clip_shape

KINDS = ("raw", "features")
log = logging.getLogger(__name__)


def resize_center_crop(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 (T, H0, W0, 3) -> uint8 (T, height, width, 3): scale to cover, then centre crop. Clips stay uint8
    and channels-last through the workers (a 81x480x832 clip is 97 MB, not 388 MB as float; no transpose
    copy) and become (3, T, H, W) in [-1, 1] on the training device (nexus.models.codec.to_model_video)."""
    x = torch.from_numpy(frames)
    h0, w0 = x.shape[1:3]
    scale = max(height / h0, width / w0)
    size = (max(height, round(h0 * scale)), max(width, round(w0 * scale)))
    if size != (h0, w0):
        x = F.interpolate(x.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", antialias=True,
                          align_corners=False).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    if (top, left, x.shape[1], x.shape[2]) == (0, 0, height, width):
        return x if x.is_contiguous() else x.contiguous()
    return x[:, top: top + height, left: left + width].contiguous()


def worker_buffer(shape: tuple, dtype=torch.uint8) -> torch.Tensor:
    """An empty tensor, in shared memory when made in a DataLoader worker: handing it to the main process
    then costs no copy (a 81x480x832 clip is 97 MB)."""
    buf = torch.empty(shape, dtype=dtype)
    return buf.share_memory_() if get_worker_info() is not None else buf


def decode_into(data: bytes, start: int, num_frames: int, height: int, width: int) -> torch.Tensor:
    """Decode frames [start, start + num_frames) of a height x width clip straight into one uint8 buffer."""
    buf = worker_buffer((num_frames, height, width, 3))
    view = buf.numpy()              # numpy's frame copy is about twice as fast as torch's per-frame copy_ here
    for k, frame in enumerate(iter_frames(data, num_frames, start)):
        if frame.shape[:2] != (height, width):
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, the shard's json says {width}x{height}")
        view[k] = frame
    return buf


class DecodedShards(torch.utils.data.Dataset):
    """Samples of the shards, decoded: a clip of num_frames at target_fps (PyAV, in the loader's workers),
    resized and centre-cropped, scaled to [-1, 1] last; or the precomputed features. `fetch` returns None for a
    sample that cannot be used (logged once), which the stream replaces and counts."""

    def __init__(self, index: ShardIndex, kind: str, num_frames: int, height: int, width: int,
                 target_fps: float | None = None, start: str = "random", seed: int = 0):
        self.index, self.kind, self.shape = index, kind, (num_frames, height, width)
        self.target_fps, self.start, self.seed = target_fps, start, seed

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        return self.load(i, self.shape, 0)

    def fetch(self, i: int, bucket: Bucket | None = None, position: int = 0) -> dict | None:
        shape = (bucket.num_frames, bucket.height, bucket.width) if bucket else self.shape
        try:
            return self.load(i, shape, position)
        except Exception as e:        # corrupt mp4, truncated shard, missing member: skip, never kill the run
            log.warning("skipping sample %d of %s: %s: %s", i, self.index.urls[self.index._samples[i][0]],
                        type(e).__name__, e)
            return None

    def load(self, i: int, shape: tuple[int, int, int], position: int) -> dict:
        s = self.index[i]
        meta = json.loads(s["json"]) if "json" in s else {}
        out = {"key": s["__key__"], "caption": meta.get("caption", "")}
        if not out["caption"].strip():
            raise ValueError("empty caption")     # CFG dropout makes its own empty prompts; this one is a data error
        if self.kind == "raw":
            t, h, w = shape
            rng = random.Random(self.seed * 1_000_003 + position)     # a new start each pass, reproducibly
            total = meta.get("num_frames")      # known from the shard's json: decode only up to the clip's end
            frames = None if total else decode_mp4(s["mp4"])
            total = total or len(frames)
            idx = clip_indices(total, t, meta.get("fps"), self.target_fps, self.start, rng)
            if idx is None:
                raise ValueError(f"{total} frames at {meta.get('fps')} fps are too short for {t} frames "
                                 f"at {self.target_fps} fps")
            consecutive = idx == list(range(idx[0], idx[0] + len(idx)))
            if frames is None and consecutive and (meta.get("height"), meta.get("width")) == (h, w):
                out["video"] = decode_into(s["mp4"], idx[0], t, h, w)     # the common case: no extra copy
                return out
            if frames is None:
                frames = decode_mp4(s["mp4"], num_frames=idx[-1] + 1)
            out["video"] = resize_center_crop(frames[idx[0]: idx[-1] + 1] if consecutive else frames[idx], h, w)
        else:
            feats = load_safetensors(s["features.safetensors"])
            out.update(latents=feats["latents"], umt5=feats["umt5"], vlm=feats["vlm"])
        return out


def collate(samples: list[dict]) -> dict:
    out = {"key": [s["key"] for s in samples], "caption": [s["caption"] for s in samples]}
    if "video" in samples[0]:    # one clip: a view, not a copy (97 MB at 81x480x832); several: into shared memory
        clips = [s["video"] for s in samples]
        out["video"] = clips[0][None] if len(clips) == 1 else torch.stack(clips, out=worker_buffer((len(clips),
                                                                                                     *clips[0].shape)))
    else:
        shapes = {tuple(s["latents"].shape) for s in samples}
        if len(shapes) > 1:
            raise ValueError(f"latents of one batch differ in shape {sorted(shapes)}: precompute one shape per "
                             f"shard set or use batch_size 1")
        out.update(latents=torch.stack([s["latents"] for s in samples]), umt5=[s["umt5"] for s in samples],
                   vlm=[s["vlm"] for s in samples])
    return out


ALWAYS_ALLOWED = 3     # failed reads that never stop a run: one bad clip early on is not a broken data set


class ShardDataModule(L.LightningDataModule):
    """Lost samples are counted apart (saved in checkpoints, logged as data/*):
      unreachable_samples  in damaged shards, lost behind the damage (exact when a manifest.json lists them)
      failed_reads         reads that failed (the same bad sample read again counts again)
      bad_samples          distinct samples (on this rank) that failed at least once
      replaced             batch positions filled with another sample because theirs failed
    The run stops (one line, exit code 1) once failed reads pass max(data.max_bad_fraction x reads so far,
    ALWAYS_ALLOWED), or at the start when the unreachable samples alone pass data.max_bad_fraction."""

    def __init__(self, shards: str | list[str], kind: str = "raw", num_frames: int = 81, height: int = 480,
                 width: int = 832, batch_size: int = 1, num_workers: int = 4, seed: int = 0, shuffle: bool = True,
                 target_fps: float | None = None, start: str = "random", buckets: list[dict] | None = None,
                 max_bad_fraction: float = 0.01):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"data.kind={kind!r}: choose one of {KINDS}")
        if start not in STARTS:
            raise ValueError(f"data.start={start!r}: choose one of {STARTS}")
        if not 0 <= max_bad_fraction <= 1:
            raise ValueError(f"data.max_bad_fraction={max_bad_fraction}: a share of the reads, from 0 to 1")
        if target_fps is not None and not target_fps > 0:
            raise ValueError(f"data.target_fps={target_fps}: a frame rate > 0, or null for consecutive frames")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"data.batch_size={batch_size} must be >= 1 and data.num_workers={num_workers} >= 0")
        check_clip_shape(num_frames, height, width)
        self.buckets = [Bucket(**b) for b in buckets] if buckets else None
        for b in self.buckets or []:
            check_clip_shape(b.num_frames, b.height, b.width, where="data.buckets")
        self.shards, self.kind, self.shape = shards, kind, (num_frames, height, width)
        self.batch_size, self.num_workers, self.seed, self.shuffle = batch_size, num_workers, seed, shuffle
        self.target_fps, self.start = target_fps, start
        self.max_bad_fraction = max_bad_fraction
        self.urls = expand_shards(shards)      # fails here, before any model loads, if nothing matches
        self.dataset: DecodedShards | None = None
        # saved in checkpoints (state_dict)
        self.samples_seen = self.failed_reads = self.replaced = self.unreachable_samples = 0
        self.bad: set[int] = set()
        self._before_last: dict | None = None

    @property
    def bad_samples(self) -> int:
        return len(self.bad)

    def counts(self) -> dict[str, float]:
        """What the logger gets: every kind of lost sample, apart."""
        return {f"data/{k}": float(getattr(self, k)) for k in
                ("unreachable_samples", "failed_reads", "bad_samples", "replaced")}

    def setup(self, stage: str) -> None:
        if self.dataset is None:
            index = ShardIndex(self.urls, on_error="skip")
            for url, why in index.bad_shards:
                log.warning("damaged shard %s (%s): using the samples indexed before the damage", url, why)
            if len(index) == 0:
                raise ValueError(f"data.shards={self.shards!r} hold no samples")
            self.unreachable_samples = index.unreachable
            share = index.unreachable / (len(index) + index.unreachable)
            if index.unreachable > ALWAYS_ALLOWED and share > self.max_bad_fraction:
                raise RunStopped(f"{index.unreachable} samples are lost in {len(index.bad_shards)} damaged shards "
                                 f"({share:.1%} > data.max_bad_fraction={self.max_bad_fraction}; the warnings name "
                                 f"them): repair or drop those shards, or raise data.max_bad_fraction")
            self.dataset = DecodedShards(index, self.kind, *self.shape, self.target_fps, self.start, self.seed)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """On the device: uint8 video -> [-1, 1]. Count what failed; stop (one line) once too much has."""
        if isinstance(batch, dict) and batch.get("video") is not None:
            batch["video"] = to_model_video(batch["video"])
        if isinstance(batch, dict) and "failed_indices" in batch:
            self._before_last = self.state_dict()
            failed = batch.pop("failed_indices")
            self.samples_seen += len(batch["key"])
            self.failed_reads += len(failed)
            self.bad.update(failed)
            self.replaced += int(batch.pop("replaced"))
            reads = self.samples_seen + self.failed_reads
            if self.failed_reads > max(self.max_bad_fraction * reads, ALWAYS_ALLOWED):
                raise RunStopped(f"{self.failed_reads} of {reads} reads failed ({self.bad_samples} distinct samples; "
                                 f"{self.failed_reads / reads:.1%} > data.max_bad_fraction={self.max_bad_fraction}): "
                                 f"check the shards (the warnings name the samples) or raise data.max_bad_fraction")
        return batch

    def state_dict(self) -> dict:
        return {"samples_seen": self.samples_seen, "failed_reads": self.failed_reads, "replaced": self.replaced,
                "unreachable_samples": self.unreachable_samples, "bad": sorted(self.bad)}

    def state_dict_before_last_batch(self) -> dict:
        """The counts without the batch fetched last: what a save made as that batch's step begins must hold,
        since the resumed run reads that batch again."""
        return getattr(self, "_before_last", None) or self.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.samples_seen, self.failed_reads = state["samples_seen"], state.get("failed_reads", 0)
        self.replaced, self.bad = state.get("replaced", 0), set(state.get("bad", []))

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        # resume: the stream position is a function of the optimizer steps already taken
        start = trainer.global_step * trainer.accumulate_grad_batches if trainer else 0
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        stream = SampleStream(self.dataset, self.batch_size, collate, seed=self.seed, shuffle=self.shuffle,
                              rank=rank, world_size=world, start_batch=start, buckets=self.buckets)
        return DataLoader(stream, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)
