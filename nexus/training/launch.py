"""`tools/fit.py` in library form: a composed config -> checks -> DataModule, AlignmentModule, Trainer -> fit.

Re-running the same command resumes: the run directory is fixed (runs/<recipe>/<run name>) and the newest
checkpoint in it (last.ckpt, or a SIGUSR1 save of a requeued SLURM job) is where training continues.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, OmegaConf

from nexus.evaluation.callback import eval_callbacks
from nexus.models.tiny import ensure_tiny_models
from nexus.slurm.requeue import RequeueOnSignal
from nexus.slurm.resume import check_run_owner, model_fingerprint, newest_checkpoint, write_run_owner
from nexus.training.callbacks import AtomicCheckpointIO, StepCheckpoint, throughput_monitor
from nexus.training.loggers import make_logger
from nexus.training.preflight import preflight


def build(node, **kwargs):
    """hydra's instantiate, re-raising the user-facing error instead of Hydra's wrapper around it."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, (ValueError, FileNotFoundError, TypeError)):
            raise e.__cause__ from None
        raise


def resume_path(run_dir: Path, resume: str) -> str | None:
    if resume == "never":
        return None
    if resume != "auto":
        if not Path(resume).exists():
            raise FileNotFoundError(f"run.resume={resume}: no such checkpoint (use auto, never or a .ckpt path)")
        return resume
    newest = newest_checkpoint(run_dir, prune=rank_zero_only.rank == 0)
    return str(newest) if newest else None


def fit(cfg: DictConfig, extra_callbacks: list | None = None) -> L.Trainer:
    run_dir = Path(cfg.run.dir)
    fingerprint = model_fingerprint(OmegaConf.to_container(cfg.model, resolve=True))
    check_run_owner(run_dir, cfg.name, fingerprint, force=cfg.run.get("force_resume", False))
    if cfg.paths.get("tiny_models"):     # the tiny recipe: build tiny random folders, then load them for real
        built = ensure_tiny_models(cfg.paths.tiny_models)
        cfg.paths.wan, cfg.paths.vlm = cfg.paths.wan or built["wan"], cfg.paths.vlm or built["vlm"]
    m, d = cfg.model, cfg.data
    preflight(cfg.paths.wan, cfg.paths.vlm, d.kind, d.num_frames, d.height, d.width,
              OmegaConf.to_container(m.connector), m.context_len)
    datamodule = build(cfg.data)    # expands the shard pattern: fails now if it matches nothing

    L.seed_everything(cfg.seed, workers=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    write_run_owner(run_dir, cfg.name, fingerprint)
    model = build(cfg.model, _convert_="all")
    strategy = build(cfg.strategy) if "_target_" in cfg.strategy else cfg.strategy.name
    callbacks = [StepCheckpoint(str(run_dir / "checkpoints"), cfg.checkpoint.every_n_steps, cfg.checkpoint.keep_last),
                 RequeueOnSignal(run_dir / "checkpoints"),
                 throughput_monitor(cfg.throughput_window), *eval_callbacks(cfg, run_dir), *(extra_callbacks or [])]
    logger = make_logger(cfg.logger.kind, str(run_dir), name=f"{cfg.name}/{cfg.run.name}", project=cfg.logger.project)
    if logger:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    trainer = instantiate(cfg.trainer, strategy=strategy, callbacks=callbacks, logger=logger,
                          plugins=[AtomicCheckpointIO()] if "_target_" not in cfg.strategy or
                          "deepspeed" not in cfg.strategy._target_ else None,
                          default_root_dir=str(run_dir))
    ckpt = resume_path(run_dir, cfg.run.resume)
    rank_zero_info(f"resuming from {ckpt}" if ckpt else f"starting a new run in {run_dir}")
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
    return trainer
