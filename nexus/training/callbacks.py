"""Callbacks and plugins of the stage-1 run: step checkpoints that also save the final step, crash-safe
checkpoint files, and throughput (samples/s, latent tokens/s) through Lightning's ThroughputMonitor."""
from __future__ import annotations

import os
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint, ThroughputMonitor
from lightning.pytorch.plugins.io import TorchCheckpointIO

from nexus.shapes import latent_tokens


class StepCheckpoint(ModelCheckpoint):
    """Every N optimizer steps keep the newest K, plus last.ckpt; also save when training ends on a step that
    was not a multiple of N (Lightning only saves on steps or epochs). Never on an exception or Ctrl-C."""

    def __init__(self, dirpath: str, every_n_steps: int, keep_last: int):
        if every_n_steps < 1 or keep_last < 1:
            raise ValueError(f"checkpoint.every_n_steps={every_n_steps} and checkpoint.keep_last={keep_last} "
                             f"must both be >= 1")
        super().__init__(dirpath=dirpath, filename="step{step:08d}", auto_insert_metric_name=False,
                         every_n_train_steps=every_n_steps, save_top_k=keep_last, monitor="step", mode="max",
                         save_last=True)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step > 0 and self._last_global_step_saved != trainer.global_step:
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
        super().on_train_end(trainer, pl_module)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary name and rename: a killed save never leaves a truncated file as last.ckpt."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
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


def throughput_monitor(window_size: int = 10) -> ThroughputMonitor:
    return ThroughputMonitor(batch_size_fn=batch_size, length_fn=batch_latent_tokens, window_size=window_size)
