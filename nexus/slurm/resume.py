"""Which checkpoint a run continues from (whose run a run directory is: nexus.training.run_dir).

Two kinds of checkpoint live in `<run dir>/checkpoints`: StepCheckpoint's (`step*.ckpt`, `last.ckpt`) and the
SIGUSR1 saves (`hpc-step*.ckpt`, nexus.slurm.requeue). A requeued job must continue from the newest, whichever
kind it is, so nothing is trained twice or skipped. DeepSpeed checkpoints are folders whose `latest` file is
written last, so a folder without one is an interrupted save and never chosen.
"""
from __future__ import annotations

from pathlib import Path

HPC_PREFIX = "hpc-step"     # nexus.slurm.requeue's SIGUSR1 saves: hpc-step<global step>.ckpt


def saved_at(ckpt: Path) -> float | None:
    """When a checkpoint was completed (file, or DeepSpeed folder's `latest`); None when missing/incomplete."""
    try:
        return (ckpt / "latest").stat().st_mtime if ckpt.is_dir() else ckpt.stat().st_mtime
    except FileNotFoundError:     # incomplete, or removed meanwhile by rank 0's pruning
        return None


def newest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint among last.ckpt and the SIGUSR1 saves (last.ckpt wins a tie)."""
    ckdir = Path(run_dir) / "checkpoints"
    hpc = sorted(ckdir.glob(f"{HPC_PREFIX}*.ckpt"))
    found = [(t, i, p) for i, p in enumerate([*hpc, ckdir / "last.ckpt"]) if (t := saved_at(p)) is not None]
    return max(found)[2] if found else None


def prune_hpc_saves(run_dir: str | Path, keep: str | Path | None) -> None:
    """Remove the SIGUSR1 saves other than `keep` (each is a whole model + optimizer copy)."""
    import shutil
    for p in (Path(run_dir) / "checkpoints").glob(f"{HPC_PREFIX}*.ckpt"):
        if keep is None or p != Path(keep):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def zero_world_size(ckpt: Path | None) -> int | None:
    """How many ranks wrote a ZeRO checkpoint folder (its optimizer shards); None for a plain file."""
    if ckpt is None or not ckpt.is_dir():
        return None
    return len(list(ckpt.glob("*/zero_pp_rank_*_mp_rank_00_optim_states.pt"))) or None
