"""Loggers: W&B, CSV, or none, and the record of what a run is.

W&B follows its own environment: WANDB_MODE (online/offline/disabled), WANDB_BASE_URL (a self-hosted server),
WANDB_API_KEY / `wandb login`. Without WANDB_MODE a run is online when credentials for the server exist and
offline otherwise (no login prompt on a cluster node). The W&B run id is the run directory's (run.json), so a
resumed run continues its W&B run and a new run (run.resume=never, another sweep job) gets a new one.
"""
from __future__ import annotations

import netrc
import os
from urllib.parse import urlparse

import lightning as L

LOGGERS = ("wandb", "csv", "none")


def wandb_credentials() -> bool:
    """Whether W&B can log in without asking: an API key, or a netrc entry for the server W&B talks to."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_logger(kind: str) -> None:
    if kind not in LOGGERS:
        raise ValueError(f"logger={kind!r}: choose one of {LOGGERS}")


def make_logger(kind: str, run_dir: str, name: str, project: str = "nexus", run_id: str | None = None,
                entity: str | None = None, group: str | None = None, tags=(), notes: str | None = None):
    check_logger(kind)
    if kind == "none":
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger
        return CSVLogger(save_dir=run_dir, name="csv")   # csv/version_N: a resumed run never overwrites history
    from lightning.pytorch.loggers import WandbLogger
    offline = not os.environ.get("WANDB_MODE") and not wandb_credentials()    # else W&B reads WANDB_MODE itself
    logger = WandbLogger(project=project, name=name, save_dir=run_dir, id=run_id, resume="allow", offline=offline,
                         entity=entity, group=group, tags=list(tags or []) or None, notes=notes)
    logger._wandb_init.pop("anonymous", None)     # Lightning passes anonymous=None, which W&B 0.31 warns about
    return logger


def parameter_counts(module, encoders=None) -> dict:
    """Trainable and frozen parameters of the module (ZeRO-3 partitions count whole), and of the frozen encoders."""
    def count(params):
        return sum(getattr(p, "ds_numel", p.numel()) for p in params)
    ps = list(module.parameters())
    out = {"trainable": count(p for p in ps if p.requires_grad), "frozen": count(p for p in ps if not p.requires_grad)}
    for name, child in module.named_children():
        out[name] = count(child.parameters())
    if encoders is not None:
        out["frozen_encoders"] = count(p for m in (encoders.vae, encoders.umt5, encoders.vlm) if m is not None
                                       for p in m.parameters())
    return out


class RunRecord(L.Callback):
    """Sends the logger the whole run: the composed config, recipe, seed, git commit, command, run.json's
    identity and the parameter counts (once the model is built)."""

    def __init__(self, config: dict, info: dict):
        self.config, self.info = config, info

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.logger is None or trainer.global_rank != 0:
            return
        launch = (self.info.get("launches") or [{}])[-1]
        record = {**self.config, "nexus": {
            "recipe": self.config.get("name"), "seed": self.config.get("seed"), "run_dir": self.config["run"]["dir"],
            "git_commit": (self.info.get("git") or {}).get("commit"), "git_dirty": (self.info.get("git") or {}).get("dirty"),
            "command": launch.get("command"), "resumed_from": launch.get("checkpoint"),
            "created": self.info.get("created"), "world_size": trainer.world_size,
            "params": parameter_counts(pl_module, getattr(pl_module, "encoders", None))}}
        trainer.logger.log_hyperparams(record)
