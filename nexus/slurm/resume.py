"""Which checkpoint a run continues from, and whose run a run directory is.

Two kinds of checkpoint live in `<run dir>/checkpoints`: StepCheckpoint's (`step*.ckpt`, `last.ckpt`) and the
SIGUSR1 saves (`hpc-step*.ckpt`, nexus.slurm.requeue). A requeued job must continue from the newest, whichever
kind it is, so nothing is trained twice or skipped. DeepSpeed checkpoints are folders whose `latest` file is
written last, so a folder without one is an interrupted save and never chosen.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

HPC_PREFIX = "hpc-step"     # nexus.slurm.requeue's SIGUSR1 saves: hpc-step<global step>.ckpt
OWNER_FILE = "run.json"


def saved_at(ckpt: Path) -> float | None:
    """When a checkpoint was completed (file, or DeepSpeed folder's `latest`); None when missing/incomplete."""
    try:
        return (ckpt / "latest").stat().st_mtime if ckpt.is_dir() else ckpt.stat().st_mtime
    except FileNotFoundError:     # incomplete, or removed meanwhile by rank 0's pruning
        return None


def newest_checkpoint(run_dir: str | Path, prune: bool = False) -> Path | None:
    """The newest complete checkpoint among last.ckpt and the SIGUSR1 saves (last.ckpt wins a tie).
    prune: remove the SIGUSR1 saves that are not it (they are whole copies of the model and optimizer)."""
    ckdir = Path(run_dir) / "checkpoints"
    hpc = sorted(ckdir.glob(f"{HPC_PREFIX}*.ckpt"))
    found = [(t, i, p) for i, p in enumerate([*hpc, ckdir / "last.ckpt"]) if (t := saved_at(p)) is not None]
    newest = max(found)[2] if found else None
    if prune:
        import shutil
        for p in hpc:
            if p != newest:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return newest


def zero_world_size(ckpt: Path | None) -> int | None:
    """How many ranks wrote a ZeRO checkpoint folder (its optimizer shards); None for a plain file."""
    if ckpt is None or not ckpt.is_dir():
        return None
    return len(list(ckpt.glob("*/zero_pp_rank_*_mp_rank_00_optim_states.pt"))) or None


def model_fingerprint(model_cfg: dict) -> str:
    """What a checkpoint's tensors depend on: connector sizes, what of the generator is trained, LoRA, context."""
    keys = ("connector", "generator_train", "context_len") + (("lora",) if model_cfg.get("generator_train") == "lora" else ())
    return hashlib.sha1(json.dumps({k: model_cfg.get(k) for k in keys}, sort_keys=True).encode()).hexdigest()[:12]


def has_checkpoints(run_dir: Path) -> bool:
    return any((run_dir / "checkpoints").glob("*.ckpt"))


def check_run_owner(run_dir: str | Path, recipe: str, fingerprint: str, force: bool = False) -> None:
    """Refuse a run directory that holds another recipe's (or another architecture's) checkpoints."""
    run_dir = Path(run_dir)
    f = run_dir / OWNER_FILE
    if force or not f.is_file() or not has_checkpoints(run_dir):
        return
    owner = json.loads(f.read_text())
    if owner.get("recipe") != recipe:
        what = f"recipe {owner.get('recipe')!r}, not {recipe!r}"
    elif owner.get("model_fingerprint") != fingerprint:
        what = (f"recipe {recipe!r} with another model (model.connector / generator_train / lora / context_len "
                f"differ: fingerprint {owner.get('model_fingerprint')} != {fingerprint})")
    else:
        return
    raise ValueError(f"{run_dir} holds checkpoints of {what} ({f}): choose another run.name (or run.dir), "
                     f"or pass run.force_resume=true to use it anyway")


def write_run_owner(run_dir: str | Path, recipe: str, fingerprint: str) -> None:
    f = Path(run_dir) / OWNER_FILE
    tmp = f.with_name(f".{f.name}.{os.getpid()}")     # every rank writes the same content; rename is atomic
    tmp.write_text(json.dumps({"recipe": recipe, "model_fingerprint": fingerprint}, indent=2) + "\n")
    os.replace(tmp, f)
