"""Content-hashed, multi-GPU precompute: raw clip shards -> feature shards for `data.kind=features`.

Each output sample is keyed by sha256(mp4 bytes, caption, encoder identity + settings)[:24], so a rerun, or a
second recipe with the same encoders and settings, skips what `out/index.jsonl` already lists. Encoding runs
in Lightning's predict loop (one process per device); a BasePredictionWriter writes each rank's own shards,
`features-r{rank}-{n:06d}.tar` (members `<key>.features.safetensors` + `<key>.json`, the layout
`nexus.data.features` writes), atomically, and appends their samples to the index once the shard exists.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import lightning as L
import torch
import webdataset as wds
from lightning.pytorch.callbacks import BasePredictionWriter
from safetensors.torch import save as save_safetensors
from torch.utils.data import DataLoader, Dataset

from nexus.data.decode import check_decoder, preflight, threads_per_decode
from nexus.data.video import worker_context
from nexus.data.datamodule import DecodedShards
from nexus.data.shards import ShardIndex, expand_shards
from nexus.data.video import atomic_write
from nexus.models.encoders import FrozenEncoders, save_null_features
from nexus.models.loading import DTYPES, VLM_LAYOUT, WAN_LAYOUT, check_folder
from nexus.shapes import check_clip_shape
from nexus.models.understanding import INSTRUCTION

# bump when the encoding itself changes (posterior mode, normalisation, prompt handling): old keys then miss
ENCODER_ID = "nexus.precompute/v1: wan-vae posterior mode, normalised; umt5 last hidden; vlm hidden states"
INDEX = "index.jsonl"
_SHARD = re.compile(r"^features-r(\d+)-(\d{6})\.tar$")


def encoder_identity(wan_path: str, vlm_path: str, num_frames: int, height: int, width: int, dtype: str,
                     instruction: str = INSTRUCTION) -> str:
    """Everything besides the clip that decides its features; the generator (transformer/) is left out on
    purpose, so recipes that differ only in what they train share one feature set."""
    configs = {name: Path(p).read_text() for name, p in (("wan/vae", Path(wan_path, "vae", "config.json")),
                                                         ("wan/text_encoder", Path(wan_path, "text_encoder",
                                                                                   "config.json")),
                                                         ("vlm", Path(vlm_path, "config.json")))}
    return json.dumps({"encoder": ENCODER_ID, "num_frames": num_frames, "height": height, "width": width,
                       "dtype": dtype, "instruction": instruction, "configs": configs}, sort_keys=True)


def content_key(mp4: bytes, caption: str, identity: str) -> str:
    h = hashlib.sha256()
    for part in (mp4, caption.encode("utf-8"), identity.encode("utf-8")):
        h.update(len(part).to_bytes(8, "little"))    # length-prefixed: no ambiguity between the parts
        h.update(part)
    return h.hexdigest()[:24]


def read_index(out_dir: str | Path) -> dict[str, dict]:
    """hash key -> its index line; a line cut off by a crash is ignored (its shard was complete anyway)."""
    path = Path(out_dir) / INDEX
    entries = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
                entries[e["key"]] = e
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return entries


class PendingClips(Dataset):
    """The decoded clips (first num_frames from frame 0, so a key always means the same frames) not yet in
    the index, each with its content key."""

    def __init__(self, clips: DecodedShards, pending: list[tuple[int, str]]):
        self.clips, self.pending = clips, pending

    def __len__(self) -> int:
        return len(self.pending)

    def __getitem__(self, i: int) -> dict:
        j, key = self.pending[i]
        s = self.clips[j]
        return {"key": key, "source_key": s["key"], "caption": s["caption"], "video": s["video"]}


def _collate(samples: list[dict]) -> dict:
    out = {k: [s[k] for s in samples] for k in ("key", "source_key", "caption")}
    out["video"] = torch.stack([s["video"] for s in samples])
    return out


class PrecomputeModule(L.LightningModule):
    """Holds the frozen encoders as submodules only so that Lightning places them on each rank's device."""

    def __init__(self, encoders: FrozenEncoders):
        super().__init__()
        self.encoders = encoders
        self.frozen = torch.nn.ModuleList([m for m in (encoders.vae, encoders.umt5, encoders.vlm) if m is not None])
        self.frozen.requires_grad_(False).eval()

    def predict_step(self, batch: dict, batch_idx: int = 0) -> dict:
        latents = self.encoders.latents(batch["video"]).float().cpu()
        prompts = self.encoders.prompts(batch["caption"])
        return {"key": batch["key"], "source_key": batch["source_key"], "caption": batch["caption"],
                "latents": list(latents), "umt5": [t.float().cpu() for t in prompts["umt5"]],
                "vlm": [t.float().cpu() for t in prompts["vlm"]]}


class FeatureShardWriter(BasePredictionWriter):
    """Buffers each rank's samples and writes a shard every `maxcount` (and the rest at the end)."""

    def __init__(self, out_dir: str | Path, maxcount: int = 256):
        super().__init__(write_interval="batch")
        self.out, self.maxcount = Path(out_dir), maxcount
        self.buffer: list[dict] = []
        self.shards: list[str] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        for j, key in enumerate(prediction["key"]):
            tensors = {k: prediction[k][j].contiguous() for k in ("latents", "umt5", "vlm")}
            self.buffer.append({"__key__": key, "features.safetensors": save_safetensors(tensors),
                                "json": json.dumps({"caption": prediction["caption"][j],
                                                    "source_key": prediction["source_key"][j]}).encode()})
        if len(self.buffer) >= self.maxcount:
            self.flush(trainer.global_rank)

    def on_predict_end(self, trainer, pl_module) -> None:
        self.flush(trainer.global_rank)
        trainer.strategy.barrier()      # every rank's shards and index lines exist before anyone summarises

    def flush(self, rank: int) -> None:
        if not self.buffer:
            return
        # the next free number of this rank's shards: earlier runs' shards are never overwritten
        taken = [int(m[2]) for m in map(_SHARD.match, os.listdir(self.out)) if m and int(m[1]) == rank]
        path = self.out / f"features-r{rank}-{max(taken, default=-1) + 1:06d}.tar"
        with atomic_write(path) as f, wds.TarWriter(f, encoder=False, mtime=0.0) as writer:
            for s in self.buffer:
                writer.write(s)
        lines = "".join(json.dumps({"key": s["__key__"], "source_key": json.loads(s["json"])["source_key"],
                                    "shard": path.name}) + "\n" for s in self.buffer)
        with open(self.out / INDEX, "a") as f:      # one append per shard, after the shard is complete
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        self.shards.append(str(path))
        self.buffer = []


def precompute(shards, out_dir: str | Path, wan_path: str, vlm_path: str, num_frames: int, height: int,
               width: int, batch_size: int = 1, dtype: str = "fp32", instruction: str = INSTRUCTION,
               devices: int | str = 1, accelerator: str = "auto", num_workers: int = 2, maxcount: int = 256,
               progress: bool = True, decoder: str = "torchcodec") -> dict:
    """Encode the clips of `shards` not yet in `out_dir`; -> {"seen", "skipped", "written", "shards"}."""
    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r}: choose one of {sorted(DTYPES)}")
    check_decoder(decoder)
    preflight(decoder)
    check_clip_shape(num_frames, height, width, keys=("--num-frames", "--height", "--width"))
    check_folder("--wan", wan_path, WAN_LAYOUT, env="NEXUS_WAN_PATH")      # before anything is created
    check_folder("--vlm", vlm_path, VLM_LAYOUT, env="NEXUS_VLM_PATH")
    identity = encoder_identity(wan_path, vlm_path, num_frames, height, width, dtype, instruction)
    index = ShardIndex(expand_shards(shards))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # every rank computes the same pending list: nothing is written before all ranks join the process group
    done, pending = set(read_index(out)), []
    for i in range(len(index)):
        s = index[i]
        key = content_key(s["mp4"], json.loads(s.get("json", b"{}")).get("caption", ""), identity)
        if key not in done:
            done.add(key)          # a clip repeated in the input is encoded once
            pending.append((i, key))
    null_path = out / "null.safetensors"
    if not pending and null_path.is_file():
        return {"seen": len(index), "skipped": len(index), "written": 0, "shards": 0}

    encoders = FrozenEncoders.load(wan_path, vlm_path, DTYPES[dtype], instruction)
    writer = FeatureShardWriter(out, maxcount)
    trainer = L.Trainer(accelerator=accelerator, devices=devices, logger=False, enable_checkpointing=False,
                        enable_progress_bar=progress, enable_model_summary=False, default_root_dir=str(out),
                        callbacks=[writer])
    if trainer.is_global_zero and not null_path.is_file():
        with torch.no_grad():
            save_null_features(null_path, encoders.prompts([""]))
    before = read_index(out)
    if pending:
        clips = DecodedShards(index, "raw", num_frames, height, width, start="fixed", decoder=decoder,
                              threads=threads_per_decode("auto", num_workers))
        loader = DataLoader(PendingClips(clips, pending), batch_size=batch_size, collate_fn=_collate,
                            num_workers=num_workers, multiprocessing_context=worker_context() if num_workers > 0 else None)
        trainer.predict(PrecomputeModule(encoders), loader, return_predictions=False)
    new = [e for k, e in read_index(out).items() if k not in before]
    return {"seen": len(index), "skipped": len(index) - len(pending), "written": len(new),
            "shards": len({e["shard"] for e in new})}


def format_summary(s: dict) -> str:
    return (f"precompute: {s['seen']} samples seen, {s['skipped']} skipped (already present), "
            f"{s['written']} written, {s['shards']} shards written")
