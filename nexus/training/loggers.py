"""Loggers: W&B (offline unless a key is configured), CSV, or none. One stable W&B id per run directory,
so re-running the same command resumes the same W&B run instead of starting a new one."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

LOGGERS = ("wandb", "csv", "none")


def wandb_online() -> bool:
    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return False
    return bool(os.environ.get("WANDB_API_KEY")) or (Path.home() / ".netrc").is_file() and \
        "api.wandb.ai" in (Path.home() / ".netrc").read_text()


def make_logger(kind: str, run_dir: str, name: str, project: str = "nexus", offline: bool | None = None):
    if kind not in LOGGERS:
        raise ValueError(f"logger={kind!r}: choose one of {LOGGERS}")
    if kind == "none":
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger
        return CSVLogger(save_dir=run_dir, name="csv")   # csv/version_N: a resumed run never overwrites history
    from lightning.pytorch.loggers import WandbLogger
    run_id = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    return WandbLogger(project=project, name=name, save_dir=run_dir, id=run_id, resume="allow",
                       offline=(not wandb_online()) if offline is None else offline)
