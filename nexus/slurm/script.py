"""The text of an sbatch script: one srun task per GPU, SIGUSR1 ahead of the time limit, requeue allowed."""
from __future__ import annotations

import shlex
from datetime import datetime


def sbatch_header(job_name: str, nodes: int, tasks_per_node: int, gpus_per_node: int, cpus_per_task: int,
                  time: str, log_dir: str, partition: str | None = None, account: str | None = None,
                  qos: str | None = None, mem: str | None = None, signal_lead: int | None = None,
                  extra: list[str] = ()) -> list[str]:
    opts = [f"--job-name={job_name}", f"--nodes={nodes}", f"--ntasks-per-node={tasks_per_node}"]
    if gpus_per_node:
        opts.append(f"--gpus-per-node={gpus_per_node}")
    opts += [f"--cpus-per-task={cpus_per_task}", f"--time={time}"]
    opts += [f"--{k}={v}" for k, v in (("partition", partition), ("account", account), ("qos", qos), ("mem", mem))
             if v not in (None, "")]
    if signal_lead:
        opts.append(f"--signal=USR1@{signal_lead}")   # to the srun tasks (not the batch shell), lead seconds early
    # the same job id comes back after a requeue, so the log is appended to, not replaced
    opts += ["--requeue", "--open-mode=append", f"--output={log_dir}/%x-%j.out", *extra]
    return [f"#SBATCH {o}" for o in opts]


def shell_command(argv: list[str], indent: str = "    ") -> str:
    """argv as a readable shell command: one quoted argument per continuation line after the script name."""
    q = [shlex.quote(a) for a in argv]
    head = next((i for i, a in enumerate(argv) if a.endswith(".py")), len(argv) - 1) + 1
    return " \\\n".join([" ".join(q[:head]), *(indent + a for a in q[head:])])


def sbatch_script(header: list[str], workdir: str, setup: list[str], command: list[str], note: str) -> str:
    lines = ["#!/bin/bash", f"# {note}", f"# written {datetime.now().isoformat(timespec='seconds')}", *header, "",
             "set -euo pipefail", f"cd {shlex.quote(workdir)}", *setup,
             'echo "job $SLURM_JOB_ID, restart ${SLURM_RESTART_COUNT:-0}, nodes $SLURM_JOB_NODELIST"',
             "# the stop signals are for the training tasks (they save, stop and requeue the job); this shell only",
             "# notes them, so `scancel --full --signal=USR1|TERM` does not end the job before they are done",
             """trap 'echo "batch shell: SIGUSR1, the training tasks save and requeue"' USR1""",
             """trap 'echo "batch shell: SIGTERM, the training tasks save and requeue"' TERM""",
             "# srun: one task per GPU; Lightning takes ranks and world size from SLURM, and only tasks started by",
             "# srun receive the SIGUSR1 that --signal sends before the time limit",
             "srun --kill-on-bad-exit=1 " + shell_command(command), ""]
    return "\n".join(lines)
