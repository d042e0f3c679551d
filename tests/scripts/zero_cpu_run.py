"""Train a tiny module with DeepSpeed ZeRO on 2 CPU processes (gloo); used by tests/test_strategies.py.

Run as ``python zero_cpu_run.py OUT_DIR [STAGE]``. Lightning's subprocess launcher re-executes this file for
rank 1, so it must be a real script (not pytest). Rank 0 writes into OUT_DIR:
  init.pt / final.pt  - module state dicts before and after fit
  result.json         - global_step, world_size, strategy class, checkpoint path
  ckpt/final.ckpt/    - the DeepSpeed checkpoint directory written by ModelCheckpoint
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch
from torch.utils.data import DataLoader, TensorDataset

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from nexus.training.strategies import deepspeed_strategy

STEPS, BATCH, WORLD = 3, 4, 2


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def main(out: Path, stage: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(0, verbose=False)
    model = Tiny()
    g = torch.Generator().manual_seed(1)
    # exactly one epoch of STEPS steps per rank, so the epoch-end checkpoint holds the final weights
    n = STEPS * BATCH * WORLD
    data = TensorDataset(torch.randn(n, 8, generator=g), torch.randn(n, 1, generator=g))
    ckpt = ModelCheckpoint(dirpath=out / "ckpt", filename="final")
    trainer = pl.Trainer(
        accelerator="cpu", devices=WORLD, strategy=deepspeed_strategy(stage=stage), max_steps=STEPS,
        logger=False, callbacks=[ckpt], enable_progress_bar=False, enable_model_summary=False,
    )
    if trainer.is_global_zero:
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, out / "init.pt")
    trainer.fit(model, DataLoader(data, batch_size=BATCH))
    if trainer.is_global_zero:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / "final.pt")
        (out / "result.json").write_text(json.dumps({
            "global_step": trainer.global_step,
            "world_size": trainer.world_size,
            "strategy": type(trainer.strategy).__name__,
            "ckpt": ckpt.best_model_path or ckpt.last_model_path,
        }))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 2)
