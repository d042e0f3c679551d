"""`tools/fit.py` in library form: a composed config -> checks -> DataModule, AlignmentModule, Trainer -> fit.

Everything that can refuse the command (config types, the run directory's owner and settings, weight folders,
shards, shapes, callbacks) is checked before the run directory is touched and before any weights load; what the
run does with its directory (resume, start afresh, move an old run aside) is nexus.training.run_dir's.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, OmegaConf

from nexus import console
from nexus.errors import RunStopped, user_message
from nexus.evaluation.callback import eval_callbacks
from nexus.folder_lock import hold
from nexus.models.tiny import ensure_tiny_models
from nexus.models.speed import check_accelerator, set_tf32
from nexus.plan.fit import check_fit
from nexus.plan.table import gpu_memory
from nexus.schema import Fit
from nexus.validation import validate
from nexus.shapes import check_clip_shape
from nexus.slurm.requeue import RequeueOnSignal
from nexus.training.callbacks import AtomicCheckpointIO, StepCheckpoint, throughput_monitor
from nexus.training.loggers import RunRecord, make_logger
from nexus.training.module import check_training_settings, init_from_info, init_from_sizes
from nexus.training.preflight import preflight
from nexus.training.progress import StepProgressBar
from nexus.training.run_dir import RunPlan, has_checkpoints, plan_run, start_run


def build(node, **kwargs):
    """hydra's instantiate, re-raising the user-facing error instead of Hydra's wrapper around it."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, (ValueError, FileNotFoundError, TypeError)):
            raise e.__cause__ from None
        raise


def sweep_group(cfg: DictConfig) -> str | None:
    """A Hydra sweep's jobs share a W&B group, <recipe>/<run.name>, unless logger.group names one."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    if cfg.logger.get("group"):
        return cfg.logger.group
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return f"{cfg.name}/{cfg.run.name}"
    return None


def fit(cfg: DictConfig, extra_callbacks: list | None = None) -> L.Trainer:
    cfg = validate(cfg, Fit)
    from nexus.checks import fit_inputs_outputs
    fit_inputs_outputs(cfg)       # output paths and input files, before anything is built
    m, d, run_dir = cfg.model, cfg.data, Path(cfg.run.dir)
    check_clip_shape(d.num_frames, d.height, d.width)        # the cheap checks first: nothing built yet
    check_accelerator(cfg.trainer.accelerator)
    if cfg.name == "lumos_release_stage1" and not m.get("init_from"):
        raise ValueError("model.init_from is not set: pass the converted release (tools/convert.py omnivideo --bundle "
                         "<OmniVideo11B> --out exports/lumos-nexus; then model.init_from=exports/lumos-nexus or "
                         "NEXUS_RELEASE_PATH)")
    for k, v in init_from_sizes(m.get("init_from")).items():    # the export's weights fix the connector's sizes
        m.connector[k] = v
    check_training_settings(**OmegaConf.to_container(m, resolve=True))
    gpu_memory(cfg.plan.gpu)        # a bad plan.gpu is named now, not after the tiny models are built
    callbacks = [StepCheckpoint(str(run_dir / "checkpoints"), cfg.checkpoint.every_n_steps, cfg.checkpoint.keep_last),
                 RequeueOnSignal(run_dir / "checkpoints"), throughput_monitor(cfg.throughput_window),
                 *eval_callbacks(cfg, run_dir), *(extra_callbacks or [])]
    datamodule = build(cfg.data)    # expands the shard pattern: fails now if it matches nothing
    lock = hold(run_dir, "choose another run.name (or run.dir)", rank_zero_only.rank)   # one live process
    try:
        plan = plan_run(cfg)            # refuses a run directory that is not this command's
        if cfg.paths.get("tiny_models"):     # the tiny recipe: build tiny random folders, then load them for real
            built = ensure_tiny_models(cfg.paths.tiny_models)
            cfg.paths.wan, cfg.paths.vlm = cfg.paths.wan or built["wan"], cfg.paths.vlm or built["vlm"]
        if m.get("init_from"):         # a converted release names its frozen parts (VAE, UMT5, VLM)
            info = init_from_info(m.init_from)
            cfg.paths.wan, cfg.paths.vlm = cfg.paths.wan or info.get("wan_path"), cfg.paths.vlm or info.get("vlm_path")
        preflight(cfg.paths.wan, cfg.paths.vlm, d.kind, d.num_frames, d.height, d.width,
                  OmegaConf.to_container(m.connector), m.context_len, m.conditioning, m.text_len, m.get("init_from"))
        set_tf32(cfg.tf32)
        memory = check_fit(cfg)         # refuses what cannot fit on plan.gpu (the CUDA device by default)
        model = build(cfg.model, _convert_="all")
        strategy = build(cfg.strategy) if "_target_" in cfg.strategy else cfg.strategy.name
        lg = cfg.logger
        logger = make_logger(lg.kind, str(run_dir), name=os.path.relpath(run_dir, cfg.run.root), project=lg.project,
                             run_id=plan.info["wandb_id"], entity=lg.entity, group=sweep_group(cfg), tags=lg.tags,
                             notes=lg.notes)
        if logger:
            callbacks += [LearningRateMonitor(logging_interval="step"),
                          RunRecord(OmegaConf.to_container(cfg, resolve=True), plan.info)]
        if cfg.trainer.enable_progress_bar:
            callbacks.append(StepProgressBar())
        deepspeed = "_target_" in cfg.strategy and "deepspeed" in cfg.strategy._target_
        trainer = instantiate(cfg.trainer, strategy=strategy, callbacks=callbacks, logger=logger,
                              plugins=None if deepspeed else [AtomicCheckpointIO()], default_root_dir=str(run_dir))

        L.seed_everything(cfg.seed, workers=True, verbose=False)
        start_run(plan, cfg, rank_zero_only.rank)
        console.attach_log(run_dir / "fit.log")
        rank_zero_info(plan.describe())
        if memory is not None:
            rank_zero_info(memory.table())
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=plan.checkpoint)
        except Exception as e:
            abandon_if_empty(plan, e)
            raise
        return trainer
    finally:
        if lock is not None:
            lock.release()


def abandon_if_empty(plan: RunPlan, error: BaseException) -> None:
    """A new run that stopped on a user's mistake before its first checkpoint leaves nothing behind: its folder
    is removed (and a run moved aside by run.resume=never comes back). A crash keeps the folder and fit.log."""
    said = user_message(error)
    if (plan.checkpoint is not None or rank_zero_only.rank != 0 or said is None or isinstance(error, RunStopped)
            or has_checkpoints(plan.run_dir)):
        return
    shutil.rmtree(plan.run_dir, ignore_errors=True)
    if plan.archive_to is not None and plan.archive_to.is_dir():
        os.replace(plan.archive_to, plan.run_dir)
