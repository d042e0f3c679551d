"""A run directory belongs to one run: what `tools/fit.py` does with `runs/<recipe>/<run.name>`.

- `run.resume=auto` (the default) continues the run's newest complete checkpoint, but only when this command
  describes the same run: the same recipe and model (fingerprint), and the same settings except those that may
  change on a resume (MAY_CHANGE). Otherwise it refuses, naming the differing keys and the ways out.
- `run.resume=never` starts afresh: an existing run is first moved aside to `<run dir>.archived-<its start
  time>`, so a later plain command resumes the new run, never the old one. A SLURM requeue of the job that
  started the run resumes instead (the requeued job runs the same command).
- `run.resume=<checkpoint>` starts from that file; `run.force_resume=true` accepts any difference (recorded).

`run.json` records what made the run: recipe, model fingerprint, W&B id (new for each new run), start time,
git commit, SLURM job, and one entry per launch (command, checkpoint, accepted changes).
`plan_run` only reads (tools/submit.py calls it too); `start_run` makes the changes, on global rank 0.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nexus.errors import UserError
from nexus.provenance import command_line, covered, describe, differences, flatten, git_state, now, read_json, write_json
from nexus.slurm.resume import (checkpoint_problem, complete_saves, incomplete_saves, newest_checkpoint,
                                 prune_hpc_saves, remove_save)

RUN_FILE, CONFIG_FILE = "run.json", "config.yaml"
# keys that may differ when a run is resumed: where things are, how often to save/log/evaluate, how long to train
MAY_CHANGE = ("run.", "paths.", "logger.", "checkpoint.", "eval.", "bench.", "throughput_window",
              "model.wan_path", "model.vlm_path", "data.num_workers", "data.decode_threads", "data.worker_type",
              "trainer.max_steps", "trainer.devices",
              "trainer.num_nodes", "trainer.enable_progress_bar", "trainer.enable_model_summary",
              "trainer.log_every_n_steps")


def model_fingerprint(model_cfg: dict) -> str:
    """What a checkpoint's tensors depend on: connector sizes, what of the generator is trained, LoRA, context."""
    keys = ("connector", "generator_train", "context_len") + (("lora",) if model_cfg.get("generator_train") == "lora" else ())
    keys += ("conditioning",) if model_cfg.get("conditioning", "connector") != "connector" else ()   # older runs keep theirs
    return hashlib.sha1(json.dumps({k: model_cfg.get(k) for k in keys}, sort_keys=True).encode()).hexdigest()[:12]


def has_checkpoints(run_dir: Path) -> bool:
    return any((Path(run_dir) / "checkpoints").glob("*.ckpt"))


@dataclass
class RunPlan:
    run_dir: Path
    checkpoint: str | None                  # where training continues; None: a new run
    archive_to: Path | None = None          # run.resume=never over an existing run: moved here first
    info: dict = field(default_factory=dict)    # run.json as it will be
    changes: list = field(default_factory=list)  # accepted differences from the run's settings
    why: str = ""                               # which saves there were, for the message

    def describe(self) -> str:
        if self.checkpoint is None:
            moved = f" (the previous run there was moved to {self.archive_to})" if self.archive_to else ""
            return f"starting a new run in {self.run_dir}{moved}" + (f" ({self.why})" if self.why else "")
        changed = f"; changed since its last launch: {describe(self.changes)}" if self.changes else ""
        return f"resuming {self.run_dir} from {self.checkpoint} ({self.why}){changed}"


def _archive_name(run_dir: Path, old: dict | None) -> Path:
    t = time.strptime(old["created"][:19], "%Y-%m-%dT%H:%M:%S") if old and old.get("created") else \
        time.localtime(run_dir.stat().st_mtime)
    base = run_dir.with_name(f"{run_dir.name}.archived-{time.strftime('%Y%m%d-%H%M%S', t)}")
    out, n = base, 2
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def _requeued(old: dict | None) -> bool:
    """This process is the SLURM job that started the run, requeued: it resumes whatever run.resume says."""
    job = os.environ.get("SLURM_JOB_ID")
    return bool(old and job and old.get("slurm_job_id") == job and os.environ.get("SLURM_RESTART_COUNT", "0") != "0")


def _launch(checkpoint: str | None, changes: list) -> dict:
    return {"time": now(), "command": command_line(), "checkpoint": checkpoint, "slurm_job_id":
            os.environ.get("SLURM_JOB_ID"), "changes": [{"key": k, "was": a, "now": b} for k, a, b in changes]}


def plan_run(cfg: DictConfig) -> RunPlan:
    """Decide what this command does with its run directory; raise UserError when it must not run. Reads only."""
    run_dir = Path(cfg.run.dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    fingerprint = model_fingerprint(config["model"])
    old = read_json(run_dir / RUN_FILE)
    force = bool(cfg.run.get("force_resume", False))
    resume = "auto" if cfg.run.resume == "never" and _requeued(old) else cfg.run.resume
    if (run_dir / "multirun.yaml").is_file():
        raise UserError(f"{run_dir} is the folder of a sweep (multirun.yaml; its jobs are in its subfolders): "
                        f"choose another run.name, or resume one job with run.dir=<its folder>")
    new = {"recipe": cfg.name, "model_fingerprint": fingerprint, "wandb_id": uuid.uuid4().hex[:12],
           "created": now(), "git": git_state(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "launches": []}
    if resume == "never":
        existing = run_dir.is_dir() and any(run_dir.iterdir())
        return RunPlan(run_dir, None, _archive_name(run_dir, old) if existing else None, new)
    if resume != "auto":
        problem = checkpoint_problem(resume)
        if problem:
            raise UserError(f"run.resume={resume}: {problem}; use auto, never or the path of a checkpoint")
        _check_owner(run_dir, old, cfg.name, fingerprint, force)
        return RunPlan(run_dir, str(resume), None, _continued(old, new))
    ckpt = newest_checkpoint(run_dir)
    broken = incomplete_saves(run_dir)
    why = (f"the newest of {len(complete_saves(run_dir))} complete saves"
           + (f"; {len(broken)} incomplete left by a killed save, removed: {', '.join(p.name for p in broken)}"
              if broken else ""))
    if ckpt is None:
        return RunPlan(run_dir, None, None, new, why=why if broken else "")
    _check_owner(run_dir, old, cfg.name, fingerprint, force)
    changes = []
    saved = run_dir / CONFIG_FILE
    if saved.is_file():     # what differs, leaving out where things are (paths, run.*), the benchmark keys and
        # the keys that only repeat another (data.seed: ${seed}), which is listed itself
        derived = tuple(k for k, v in flatten(OmegaConf.to_container(cfg, resolve=False)).items()
                        if isinstance(v, str) and "${" in v)
        changes = differences(OmegaConf.to_container(OmegaConf.load(saved), resolve=False), config,
                              ("run.", "paths.", "bench.", *derived))
        refused = [c for c in changes if not covered(c[0], MAY_CHANGE)]
        if refused and not force:
            raise UserError(
                f"{run_dir} holds a run with other settings ({describe(refused)}): a run resumes only with the "
                f"settings it started with. Choose another run.name for a new run, run.resume=never to start this "
                f"one afresh (the old run is moved aside), or run.force_resume=true to continue with the new settings")
    return RunPlan(run_dir, str(ckpt), None, _continued(old, new), changes, why)


def _continued(old: dict | None, new: dict) -> dict:
    """run.json of a resumed run: its identity (W&B id, start) stays; older run dirs without one get one."""
    return {**new, **(old or {}), "launches": list((old or {}).get("launches", []))}


def _check_owner(run_dir: Path, old: dict | None, recipe: str, fingerprint: str, force: bool) -> None:
    """Refuse a run directory that holds another recipe's (or another architecture's) checkpoints."""
    if force or not old or not has_checkpoints(run_dir):
        return
    if old.get("recipe") != recipe:
        what = f"recipe {old.get('recipe')!r}, not {recipe!r}"
    elif old.get("model_fingerprint") != fingerprint:
        what = (f"recipe {recipe!r} with another model (model.connector / generator_train / lora / context_len "
                f"differ: fingerprint {old.get('model_fingerprint')} != {fingerprint})")
    else:
        return
    raise UserError(f"{run_dir} holds checkpoints of {what} ({run_dir / RUN_FILE}): choose another run.name (or "
                    f"run.dir), run.resume=never to move that run aside, or run.force_resume=true to use it anyway")


def start_run(plan: RunPlan, cfg: DictConfig, rank: int = 0) -> None:
    """Carry the plan out: archive, create the folder, write config.yaml and run.json (global rank 0 only);
    the SIGUSR1 saves that are not the checkpoint resumed from are pruned (whole model + optimizer copies)."""
    if rank != 0:
        return
    if plan.archive_to is not None:
        os.replace(plan.run_dir, plan.archive_to)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    for left in incomplete_saves(plan.run_dir):            # what a killed save left behind
        remove_save(left)
    if plan.checkpoint is not None:
        prune_hpc_saves(plan.run_dir, plan.checkpoint)
    tmp = plan.run_dir / f".{CONFIG_FILE}.tmp"
    OmegaConf.save(cfg, tmp, resolve=True)
    os.replace(tmp, plan.run_dir / CONFIG_FILE)
    plan.info["launches"].append(_launch(plan.checkpoint, plan.changes))
    write_json(plan.run_dir / RUN_FILE, plan.info)
