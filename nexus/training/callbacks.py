"""Callbacks and plugins of the stage-1 run: crash-consistent checkpoints (step saves, a `last.ckpt` link, the
final step) and throughput (samples/s, latent tokens/s) through Lightning's ThroughputMonitor.

A save becomes visible only when it is complete: a file is written as `.<name>.tmp` and renamed; a DeepSpeed
folder is written as `.<name>.partial` by every rank and renamed by rank 0 once all are done
(nexus.training.strategies). Nothing is rewritten in place: `last.ckpt` is a symbolic link to the newest step
save, swapped atomically, so it is never a half-written copy (and never a second full copy on disk).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ThroughputMonitor
from lightning.pytorch.plugins.io import TorchCheckpointIO

from nexus.shapes import latent_tokens
from nexus.training.flops import available_flops
from nexus.slurm.resume import prune_hpc_saves, remove_save


def publish(partial: Path, final: Path) -> None:
    """Rename a complete save into place. A final name is only ever replaced when a save of the same name is
    made again; the old one is moved aside first, then removed."""
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old")
        remove_save(old)
        os.replace(final, old)
        os.replace(partial, final)
        remove_save(old)
    else:
        os.replace(partial, final)


def as_saved_at_batch_end(checkpoint: dict) -> bool:
    """A save made as a batch starts (the next batch fetched, not started) gets the loop counters Lightning
    writes at the previous batch's end, which is where Lightning expects a mid-epoch save to come from: else a
    resumed run would count its logging steps one too far. -> whether it was such a save."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    progress, state = loop.get("epoch_loop.batch_progress"), loop.get("epoch_loop.state_dict")
    if not progress or not state:
        return False
    t = progress["total"]
    if t["ready"] == t["started"] + 1 and t["started"] == t["processed"] == t["completed"] and t["completed"] > 0:
        for counts in (progress["total"], progress["current"]):
            counts["ready"] -= 1
            counts["completed"] -= 1
        state["_batches_that_stepped"] -= 1
        return True
    return False


def flush_loggers(trainer) -> None:
    """Put what the loggers hold on disk (CSV buffers its rows), so no step trained before a save is unlogged."""
    for lg in trainer.loggers:
        lg.save()


class StepCheckpoint(ModelCheckpoint):
    """Every N optimizer steps keep the newest K, with last.ckpt linking to the newest; also save when training
    ends on a step that was not a multiple of N (Lightning only saves on steps or epochs), and then drop the
    stop-signal saves, which that final save supersedes. Never on an exception or Ctrl-C.

    A step's save is made as the next step starts, once that step's metrics have reached the loggers (flushed
    first): a kill during or after the save then loses no logged step."""

    def __init__(self, dirpath: str, every_n_steps: int, keep_last: int):
        if every_n_steps < 1 or keep_last < 1:
            raise ValueError(f"checkpoint.every_n_steps={every_n_steps} and checkpoint.keep_last={keep_last} "
                             f"must both be >= 1")
        super().__init__(dirpath=dirpath, filename="step{step:08d}", auto_insert_metric_name=False,
                         every_n_train_steps=every_n_steps, save_top_k=keep_last, monitor="step", mode="max",
                         save_last="link", enable_version_counter=False)     # one run per directory: no -v1

    @staticmethod
    def _link_checkpoint(trainer, filepath: str, linkpath: str) -> None:
        """last.ckpt -> the newest save, switched atomically (a new link renamed over the old one)."""
        link = Path(linkpath)
        if trainer.is_global_zero and os.path.abspath(filepath) != os.path.abspath(linkpath):
            tmp = link.with_name(f".{link.name}.link")
            tmp.unlink(missing_ok=True)
            os.symlink(os.path.relpath(filepath, link.parent), tmp)
            if link.is_dir() and not link.is_symlink():       # a full copy written by an older version
                shutil.rmtree(link)
            os.replace(tmp, link)
        trainer.strategy.barrier()

    def save_now(self, trainer) -> None:
        flush_loggers(trainer)
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_global_step_saved = trainer.global_step      # a resumed run starts from a save of this step

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # every save of the run, the stop-signal ones included; the fetched batch is read again on resume
        dm = getattr(trainer, "datamodule", None)
        if as_saved_at_batch_end(checkpoint) and hasattr(dm, "state_dict_before_last_batch"):
            checkpoint[type(dm).__qualname__] = dm.state_dict_before_last_batch()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Not here (the step's metrics are not logged yet): at the next batch's start."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step
        if step and not step % self._every_n_train_steps and not self._should_skip_saving_checkpoint(trainer):
            self.save_now(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step > 0 and self._last_global_step_saved != trainer.global_step:
            self.save_now(trainer)
        super().on_train_end(trainer, pl_module)
        if trainer.is_global_zero and trainer.global_step > 0:
            prune_hpc_saves(Path(self.dirpath).parent, keep=None)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write `.<name>.tmp` beside the checkpoint (never in /tmp), flush it to disk, rename it into place."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            publish(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def batch_size(batch: dict) -> int:
    return len(batch["key"])


def batch_latent_tokens(batch: dict) -> int:
    """Tokens the generator sees per batch: latent frames x (H/16) x (W/16), Wan's (1, 2, 2) patches."""
    if "latents" in batch:
        b, _, f, h, w = batch["latents"].shape
        return b * f * (h // 2) * (w // 2)
    b, _, t, h, w = batch["video"].shape
    return b * latent_tokens(t, h, w)


class PeakAwareThroughputMonitor(ThroughputMonitor):
    """Lightning's ThroughputMonitor, with the peak FLOP/s of GPUs its table lacks (nexus.training.flops.PEAK_FLOPS)
    so that MFU is logged on them too."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.available_flops is None:
            self.available_flops = available_flops(trainer.strategy.root_device, trainer.precision)
            for throughput in self._throughputs.values():
                throughput.available_flops = self.available_flops


def throughput_monitor(window_size: int = 10) -> ThroughputMonitor:
    return PeakAwareThroughputMonitor(batch_size_fn=batch_size, length_fn=batch_latent_tokens, window_size=window_size)
