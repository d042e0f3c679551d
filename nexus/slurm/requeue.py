"""Stop signals -> save between steps on every rank, stop, exit with the signal's code, requeue under SLURM.

SIGUSR1 (SLURM's `--signal=USR1@<lead>` before the time limit, or preemption with PreemptMode=REQUEUE), SIGTERM
(`scontrol requeue`, `scancel`, most preemption, the time limit's last word) and SIGINT (Ctrl-C) all do the
same in training (RequeueOnSignal): the handler only raises a flag; as the next optimizer step begins, the ranks agree on it (one tiny
all-reduce), flush the loggers, all save `checkpoints/hpc-step<N>.ckpt` together, and stop. The exit
code says what happened: 0 after SIGUSR1 (a planned requeue), 143 after SIGTERM, 130 after SIGINT, so a killed
job never looks like a finished one. Under SLURM, rank 0 runs `scontrol requeue` as its process exits (a job
SLURM requeues itself just makes that call fail, harmlessly). A second Ctrl-C stops at once (exit code 130).

In sampling (StopOnSignal) the same signals stop at once: the video in progress is dropped (videos are written
under a temporary name and renamed, so none is left half-written), the videos written stay, the exit code is the
signal's and the job requeues under SLURM; the rerun samples only the prompts that have no video yet.

Lightning's own handlers save from inside the signal handler on each rank, wherever that rank was interrupted
(SIGUSR1), or exit with code 0 without saving (SIGTERM); under DDP or DeepSpeed the ranks can be a step apart
or inside a collective. So ours are installed in `setup` (Lightning then adds no SIGUSR1 handler of its own)
and again in `on_train_start`, after Lightning has put its SIGTERM handler in place.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_info

from nexus.slurm.resume import HPC_PREFIX
from nexus.training.callbacks import flush_loggers

EXIT_CODES = {signal.SIGUSR1: 0, signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGINT: 128 + signal.SIGINT}


class Requeued(SystemExit):
    """Training stopped after a stop-signal save; the code is the signal's (0 for SIGUSR1)."""


def job_id() -> str | None:
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_job(job: str) -> None:
    r = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    # a preempted (or `scontrol requeue`d) job is requeued by SLURM itself; then this one fails, harmlessly
    print(f"scontrol requeue {job}: " + (f"failed ({r.stderr.strip()})" if r.returncode else "done"),
          file=sys.stderr, flush=True)


class _Handlers(Callback):
    """Our handler for each stop signal while a run is on; the previous ones back when it ends (Lightning skips
    the teardown hooks when a run raises, so on_exception restores them too; and its own teardown may put ours
    back, which then pass each signal on)."""
    handler_name = "_flag"

    def _install(self) -> None:
        handler = getattr(self, self.handler_name)
        for s in self.signals:
            previous = signal.signal(s, handler)
            if previous != handler and s not in self._previous:
                self._previous[s] = previous

    def teardown(self, trainer, pl_module, stage: str) -> None:
        # _previous is kept: Lightning's own teardown puts back the handlers it found when the run started (ours),
        # and an inactive handler of ours passes the signal on to them
        self.active = False
        for s, previous in self._previous.items():
            signal.signal(s, previous if previous is not None else signal.SIG_DFL)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "")

    def _pass_on(self, signum, frame) -> None:
        """A signal outside the run goes to the handler that was there before it (Ctrl-C is Ctrl-C again)."""
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            return previous(signum, frame)
        signal.signal(signum, previous or signal.SIG_DFL)
        os.kill(os.getpid(), signum)


class RequeueOnSignal(_Handlers):
    def __init__(self, dirpath: str | Path, signals: tuple[int, ...] = tuple(EXIT_CODES)):
        self.dirpath, self.signals = Path(dirpath), signals
        self.received, self.saved, self.active, self._previous = 0, None, False, {}

    def _flag(self, signum, frame) -> None:
        if not self.active:              # outside training: whatever was there before
            return self._pass_on(signum, frame)
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise Requeued(EXIT_CODES[signal.SIGINT])    # Ctrl-C twice: now, without a save (not Lightning's exit 1)
        if not self.received:
            self.received = signum
            print(f"\n{signal.Signals(signum).name}: saving after this step, then stopping"
                  + (" (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""), file=sys.stderr,
                  flush=True)

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.active = True
        self._install()

    def on_train_start(self, trainer, pl_module) -> None:
        self._install()                  # over Lightning's SIGTERM handler, registered after setup


    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx % trainer.accumulate_grad_batches:
            return     # only between optimizer steps: the checkpoint then holds no half-accumulated gradient
        agreed = trainer.strategy.reduce(torch.tensor(float(self.received), device=pl_module.device), reduce_op="max")
        if not int(agreed):
            return
        # every rank is here, at the same step, and the last step's metrics have reached the loggers
        self.received = int(agreed)      # the signal one rank got is every rank's
        job, code, name = job_id(), EXIT_CODES[self.received], signal.Signals(self.received).name
        step = trainer.global_step
        if step:     # saved where ModelCheckpoint saves, so Lightning restores its loop counters as usual
            flush_loggers(trainer)
            self.saved = self.dirpath / f"{HPC_PREFIX}{step:08d}.ckpt"
            trainer.save_checkpoint(self.saved)       # a collective
        if trainer.is_global_zero and job:
            atexit.register(requeue_job, job)
        rank_zero_info(f"{name}: " + (f"saved {self.saved} at step {step}; " if step else "nothing trained yet; ")
                       + f"stopping with exit code {code}; "
                       + (f"job {job} requeues as this process exits" if job else "not a SLURM job: no requeue"))
        raise Requeued(code)


class StopOnSignal(_Handlers):
    """Stop signals in prediction (tools/sample.py): drop the video in progress now, exit with the signal's code,
    requeue under SLURM (module docstring). A 14B video takes half an hour: finishing it would outlast SLURM's
    grace period (KillWait, 30 s by default)."""
    handler_name = "_stop"

    def __init__(self, signals: tuple[int, ...] = tuple(EXIT_CODES)):
        self.signals, self.active, self._previous, self.received = signals, False, {}, 0

    def _stop(self, signum, frame) -> None:
        if not self.active:
            return self._pass_on(signum, frame)
        self.received = signum
        job, code, name = job_id(), EXIT_CODES[signum], signal.Signals(signum).name
        if job and self.global_zero:
            atexit.register(requeue_job, job)
        print(f"\n{name}: stopping now; the video in progress is dropped, the videos written stay (the same command "
              f"samples the rest); exit code {code}" + (f"; job {job} requeues as this process exits" if job else ""),
              file=sys.stderr, flush=True)
        raise Requeued(code)

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.active, self.global_zero = True, trainer.is_global_zero
        self._install()

    def on_predict_start(self, trainer, pl_module) -> None:
        self._install()                  # over Lightning's SIGTERM handler (which only logs), registered after setup

