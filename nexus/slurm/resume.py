"""Which checkpoint a run continues from (whose run a run directory is: nexus.training.run_dir).

Three kinds of save live in `<run dir>/checkpoints`: StepCheckpoint's `step<N>.ckpt` (with `last.ckpt`, a
symbolic link to the newest of them), and the saves made on a stop signal, `hpc-step<N>.ckpt`
(nexus.slurm.requeue). Every save is written under a hidden name (`.<name>.partial`, `.<name>.tmp`) and renamed
to its final name only once complete (nexus.training.callbacks.publish), so a name that is there is whole; a
DeepSpeed folder without its `latest` tag (from an older version of this code) is not. A run continues from the
newest complete save of any kind, so nothing is trained twice or skipped.
"""
from __future__ import annotations

import re
from pathlib import Path

HPC_PREFIX = "hpc-step"     # the stop-signal saves: hpc-step<global step>.ckpt
_STEP = re.compile(r"^(?:hpc-)?step(\d+)\.ckpt$")


def saved_at(ckpt: Path) -> float | None:
    """When a checkpoint was completed (file, or DeepSpeed folder's `latest`); None when missing/incomplete."""
    try:
        return (ckpt / "latest").stat().st_mtime if ckpt.is_dir() else ckpt.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):   # incomplete, a dangling link, or removed meanwhile
        return None


def step_of(ckpt: Path) -> int | None:
    """The step a save's name says (last.ckpt: the step of the save it links to)."""
    m = _STEP.match(Path(ckpt).resolve().name if Path(ckpt).is_symlink() else Path(ckpt).name)
    return int(m.group(1)) if m else None


def complete_saves(run_dir: str | Path) -> list[Path]:
    """The run's complete saves, oldest first (by completion time, then step); last.ckpt only when it is not a
    link to one of the others."""
    ckdir = Path(run_dir) / "checkpoints"
    found = {}
    for p in [*ckdir.glob("step*.ckpt"), *ckdir.glob(f"{HPC_PREFIX}*.ckpt"), ckdir / "last.ckpt"]:
        t = saved_at(p)
        if t is not None and p.resolve() not in found:
            found[p.resolve()] = (t, step_of(p) or -1, p.name != "last.ckpt", p)
    return [v[-1] for v in sorted(found.values())]


def incomplete_saves(run_dir: str | Path) -> list[Path]:
    """What a killed save left: hidden partial files/folders, and DeepSpeed folders without their tag."""
    ckdir = Path(run_dir) / "checkpoints"
    partial = [p for pat in (".*.partial", ".*.tmp", ".*.old") for p in ckdir.glob(pat)]
    untagged = [p for p in ckdir.glob("*.ckpt") if p.is_dir() and not (p / "latest").is_file()]
    return sorted(partial + untagged)


def newest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete save of the run (a tie in time goes to the higher step, then to a named save)."""
    saves = complete_saves(run_dir)
    return saves[-1] if saves else None


def remove_save(path: Path) -> None:
    """Delete a save: a file, a link, or a (DeepSpeed) folder."""
    import shutil
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


def prune_hpc_saves(run_dir: str | Path, keep: str | Path | None) -> None:
    """Remove the stop-signal saves other than `keep` (each is a whole model + optimizer copy)."""
    for p in (Path(run_dir) / "checkpoints").glob(f"{HPC_PREFIX}*.ckpt"):
        if keep is None or p.resolve() != Path(keep).resolve():
            remove_save(p)


def checkpoint_problem(path: str | Path) -> str | None:
    """Why `path` is not a checkpoint this project can load (None when it is one), without reading it whole:
    a Lightning file is a torch zip archive whose dict holds Lightning's keys, a DeepSpeed checkpoint a folder
    with its `latest` tag and model states (nexus.checks.checkpoint_problem)."""
    from nexus.checks import checkpoint_problem as problem
    return problem(path)


def zero_world_size(ckpt: Path | None) -> int | None:
    """How many ranks wrote a ZeRO checkpoint folder (its optimizer shards); None for a plain file."""
    if ckpt is None or not ckpt.is_dir():
        return None
    return len(list(ckpt.glob("*/zero_pp_rank_*_mp_rank_00_optim_states.pt"))) or None
