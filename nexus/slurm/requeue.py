"""SIGUSR1 (sent by SLURM `--signal=USR1@<lead>` before the time limit, or on preemption) -> save, stop, requeue.

Lightning's own SLURM handler saves from inside the signal handler on each rank, wherever that rank was
interrupted: under DDP or DeepSpeed the ranks can be a step apart or inside a collective, which hangs or
leaves ZeRO shards of different steps. Here the handler only raises a flag; after the next optimizer step
the ranks agree (one tiny all-reduce), all save `checkpoints/hpc-step<N>.ckpt` together, and stop before
the following step. Rank 0 runs `scontrol requeue` (as Lightning does) only as
its process exits: the requeue SIGTERMs every task at once, and a rank still tearing down its process group
would then fail. Installed in `setup`, before Lightning registers its handlers, so Lightning sees a SIGUSR1
handler in place and does not add its own. Ranks and world size still come from Lightning's SLURMEnvironment.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from pathlib import Path

from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_info

from nexus.slurm.resume import HPC_PREFIX


class Requeued(SystemExit):
    """Training stopped after a SIGUSR1 save; exit status 0 (the job requeues itself as the process ends)."""


def job_id() -> str | None:
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_job(job: str) -> None:
    r = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    # a preempted job is requeued by SLURM itself; then this one fails, harmlessly
    print(f"scontrol requeue {job}: " + (f"failed ({r.stderr.strip()})" if r.returncode else "done"),
          file=sys.stderr, flush=True)


class RequeueOnSignal(Callback):
    def __init__(self, dirpath: str | Path, signum: int = signal.SIGUSR1):
        self.dirpath, self.signum = Path(dirpath), signum
        self.requested, self.saved, self._previous = False, None, None

    def _flag(self, signum, frame) -> None:
        self.requested = True

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._previous = signal.signal(self.signum, self._flag)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return     # only between optimizer steps: the checkpoint then holds no half-accumulated gradient
        if self.saved or not trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            return
        # saved where ModelCheckpoint saves, so Lightning restores its loop counters (and logged steps) as usual
        path = self.dirpath / f"{HPC_PREFIX}{trainer.global_step:08d}.ckpt"
        trainer.save_checkpoint(path)       # a collective: every rank is here, at the same step
        self.saved = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if not self.saved:
            return     # stop here, once the saved step's metrics have reached the loggers
        job = job_id()
        if trainer.is_global_zero and job:
            atexit.register(requeue_job, job)
        rank_zero_info(f"SIGUSR1: saved {self.saved} at step {trainer.global_step}; stopping; "
                       + (f"job {job} requeues as this process exits" if job else "not a SLURM job: no requeue"))
        raise Requeued(0)
