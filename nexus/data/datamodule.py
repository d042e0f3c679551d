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
import os
import random

import lightning as L
import torch
from safetensors.torch import load as load_safetensors
from torch.utils.data import DataLoader

from nexus.data.clips import STARTS, clip_indices
from nexus.data.shards import ShardIndex, expand_shards
from nexus.data.decode import check_decoder, check_device, load_clip, preflight, shared_buffer, threads_per_decode
from nexus.data.video import worker_context
from nexus.data.stream import Bucket, SampleStream, ThreadedStream
from nexus.errors import RunStopped
from nexus.models.codec import to_model_video
from nexus.shapes import check_clip_shape

KINDS = ("raw", "features")
WORKER_TYPES = ("thread", "process")
log = logging.getLogger(__name__)


class DecodedShards(torch.utils.data.Dataset):
    """Samples of the shards, decoded: a clip of num_frames at target_fps (nexus.data.decode, in the loader's
    workers), resized and centre-cropped, scaled to [-1, 1] last; or the precomputed features. `fetch` returns
    None for a sample that cannot be used (logged once), which the stream replaces and counts.
    threads: FFmpeg threads per decode (0: FFmpeg decides)."""

    def __init__(self, index: ShardIndex, kind: str, num_frames: int, height: int, width: int,
                 target_fps: float | None = None, start: str = "random", seed: int = 0,
                 decoder: str = "torchcodec", threads: int = 0, device: str = "cpu"):
        self.index, self.kind, self.shape = index, kind, (num_frames, height, width)
        self.target_fps, self.start, self.seed = target_fps, start, seed
        self.decoder, self.threads, self.device = decoder, threads, device

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

            def pick(total: int) -> list[int]:
                idx = clip_indices(total, t, meta.get("fps"), self.target_fps, self.start, rng)
                if idx is None:
                    raise ValueError(f"{total} frames at {meta.get('fps')} fps are too short for {t} frames "
                                     f"at {self.target_fps} fps")
                return idx
            out["video"] = load_clip(s["mp4"], meta, h, w, pick, self.decoder, self.threads, self.device)
        else:
            feats = load_safetensors(s["features.safetensors"])
            out.update(latents=feats["latents"], umt5=feats["umt5"], vlm=feats["vlm"])
        return out


NEEDS = {"raw": "mp4", "features": "features.safetensors"}


def check_kind(url: str, kind: str) -> None:
    """The first sample of the first shard holds what data.kind reads (its tar headers only), before any model
    loads: raw clips read as features (or the reverse) would otherwise fail sample by sample."""
    if not os.path.isfile(url):
        return
    index = ShardIndex([url], on_error="skip")
    if not len(index) or NEEDS[kind] in index.members(0):
        return
    other = next((k for k, ext in NEEDS.items() if ext in index.members(0)), None)
    hint = (f"set data.kind={other}" if other else f"its samples hold {sorted(index.members(0))}") + \
        (" (tools/precompute.py turns raw shards into feature shards)" if kind == "features" else "")
    raise ValueError(f"data.kind={kind} reads {NEEDS[kind]} from each sample, but {url} holds "
                     f"{'raw clips (mp4)' if other == 'raw' else 'precomputed features' if other else 'neither'}: {hint}")


def collate(samples: list[dict]) -> dict:
    out = {"key": [s["key"] for s in samples], "caption": [s["caption"] for s in samples]}
    if "video" in samples[0]:    # one clip: a view, not a copy (97 MB at 81x480x832); several: into shared memory
        clips = [s["video"] for s in samples]
        out["video"] = (clips[0][None] if len(clips) == 1 else torch.stack(clips) if clips[0].is_cuda
                        else torch.stack(clips, out=shared_buffer((len(clips), *clips[0].shape))))
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
                 max_bad_fraction: float = 0.01, decoder: str = "torchcodec", decode_threads: int | str = "auto",
                 worker_type: str = "thread", decode_device: str = "cpu"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"data.kind={kind!r}: choose one of {KINDS}")
        if worker_type not in WORKER_TYPES:
            raise ValueError(f"data.worker_type={worker_type!r}: choose one of {WORKER_TYPES}")
        threads_per_decode(decode_threads, 1)     # refuses a bad value now
        if kind == "raw":
            check_decoder(decoder)
            check_device(decode_device, decoder, worker_type, num_workers)
        if start not in STARTS:
            raise ValueError(f"data.start={start!r}: choose one of {STARTS}")
        if not 0 <= max_bad_fraction <= 1:
            raise ValueError(f"data.max_bad_fraction={max_bad_fraction}: a share of the reads, from 0 to 1")
        if target_fps is not None and not target_fps > 0:
            raise ValueError(f"data.target_fps={target_fps}: a frame rate > 0, or null for consecutive frames")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"data.batch_size={batch_size} must be >= 1 and data.num_workers={num_workers} >= 0")
        check_clip_shape(num_frames, height, width)
        try:
            self.buckets = [Bucket(**b) for b in buckets] if buckets else None
        except TypeError as e:
            raise ValueError(f"data.buckets={buckets}: {e}; each bucket is {{num_frames, height, width, batch_size}} "
                             "and optionally weight") from None
        for b in self.buckets or []:
            check_clip_shape(b.num_frames, b.height, b.width, where="data.buckets")
        self.shards, self.kind, self.shape = shards, kind, (num_frames, height, width)
        self.batch_size, self.num_workers, self.seed, self.shuffle = batch_size, num_workers, seed, shuffle
        self.target_fps, self.start = target_fps, start
        self.decoder, self.decode_threads, self.worker_type = decoder, decode_threads, worker_type
        self.decode_device = decode_device
        self.max_bad_fraction = max_bad_fraction
        self.urls = expand_shards(shards)      # fails here, before any model loads, if nothing matches
        check_kind(self.urls[0], kind)
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
            self.dataset = DecodedShards(index, self.kind, *self.shape, self.target_fps, self.start, self.seed,
                                         self.decoder)

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

    def train_dataloader(self) -> DataLoader | ThreadedStream:
        trainer = self.trainer
        # resume: the stream position is a function of the optimizer steps already taken
        start = trainer.global_step * trainer.accumulate_grad_batches if trainer else 0
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        # FFmpeg threads per decode: the workers (or, with none, the main process) share this rank's cores
        self.dataset.threads = threads_per_decode(self.decode_threads, self.num_workers,
                                                  trainer.num_devices if trainer else 1)
        if self.kind == "raw":     # NVDEC on this rank's GPU (a thread's current device is not the rank's)
            self.dataset.device = ("cpu" if self.decode_device == "cpu" else
                                   str(trainer.strategy.root_device) if trainer else "cuda")
            preflight(self.decoder, self.dataset.device)
        stream = SampleStream(self.dataset, self.batch_size, collate, seed=self.seed, shuffle=self.shuffle,
                              rank=rank, world_size=world, start_batch=start, buckets=self.buckets)
        if self.worker_type == "thread" and self.num_workers > 0:
            # an iterable of batches, not a DataLoader: Lightning would call its 0 worker processes a bottleneck
            return ThreadedStream(stream, self.num_workers)
        return DataLoader(stream, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0,
                          multiprocessing_context=worker_context() if self.num_workers > 0 else None)
