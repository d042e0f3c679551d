"""Real SLURM (tests/slurm/cluster.sh: munge + slurmctld + slurmd, one node, 2 CPUs): tools/submit.py submits
tiny 2-task training jobs (one srun task per device, gloo), a SIGUSR1 makes one save, requeue itself and
resume, and sbatch's refusals come back as messages. The cluster is started here when it is not up (and
stopped after the session), so these tests never skip: if SLURM cannot be installed or started they fail."""
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import ROOT, tiny_overrides

HERE = Path(__file__).resolve().parent
SLURM_DIR = Path(os.environ.get("NEXUS_SLURM_DIR", "/tmp/nexus-slurm"))


def cluster_up(env: dict) -> bool:
    if not (SLURM_DIR / "slurm.conf").is_file() or shutil.which("sinfo") is None:
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and r.stdout.strip() in ("idle", "mixed", "allocated")


@pytest.fixture(scope="session")
def slurm_env():
    """The environment for sbatch/scontrol (and the jobs, which inherit it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK",
                                                            "MASTER_PORT", "MASTER_ADDR")}
    env |= {"SLURM_CONF": str(SLURM_DIR / "slurm.conf"), "WANDB_MODE": "offline", "NEXUS_SLURM_DIR": str(SLURM_DIR)}
    started = False
    if not cluster_up(env):
        r = subprocess.run(["bash", str(HERE / "cluster.sh"), "start"], env=env, capture_output=True, text=True,
                           timeout=900)
        if r.returncode or not cluster_up(env):
            pytest.fail(f"the test SLURM cluster could not be started (tests/slurm/cluster.sh start):\n"
                        f"{r.stdout[-2000:]}\n{r.stderr[-3000:]}", pytrace=False)
        started = True
    yield env
    if started:
        subprocess.run(["bash", str(HERE / "cluster.sh"), "stop"], env=env, capture_output=True, timeout=120)


pytestmark = [pytest.mark.slurm, pytest.mark.slow]
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL")


def submit(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/submit.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def job_fields(env, job: str) -> dict:
    out = subprocess.run(["scontrol", "show", "job", job], env=env, capture_output=True, text=True).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def wait(env, job: str, until, timeout: float, run_dir: Path) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        fields = job_fields(env, job)
        if until(fields):
            return fields
        time.sleep(0.5)
    subprocess.run(["scancel", job], env=env)
    raise AssertionError(f"job {job} timed out ({fields.get('JobState')}):\n{job_log(run_dir)[-4000:]}")


def job_log(run_dir: Path) -> str:
    return "".join(p.read_text() for p in sorted((run_dir / "slurm").glob("*.out")))


def tiny_job(tmp_path, tiny_models, shards, *extra) -> list[str]:
    return ["recipe=tiny", "gpus_per_node=2", "accelerator=cpu", "cpus_per_task=1", "time=00:15:00",
            *tiny_overrides(tmp_path, tiny_models, shards, *extra)]


def submitted(r) -> str:
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.split()[-1]


def logged_steps(run_dir: Path, version: int) -> list[int]:
    rows = csv.DictReader(open(run_dir / "csv" / f"version_{version}" / "metrics.csv"))
    return sorted({int(r["step"]) for r in rows if r.get("train/loss")})


def test_two_task_job_trains_and_checkpoints(slurm_env, tmp_path, tiny_models, tiny_shards):
    r = submit(slurm_env, *tiny_job(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=6",
                                    "checkpoint.every_n_steps=3"))
    job, run_dir = submitted(r), tmp_path / "runs" / "tiny" / "default"
    fields = wait(slurm_env, job, lambda f: f.get("JobState") in FINAL, 240, run_dir)
    log = job_log(run_dir)
    assert fields["JobState"] == "COMPLETED", log[-4000:]
    assert fields["NumTasks"] == "2"
    assert "Starting with 2 processes" in log and "distributed_backend=gloo" in log
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == \
        ["last.ckpt", "step00000003.ckpt", "step00000006.ckpt"]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6
    assert logged_steps(run_dir, 0) == list(range(6))
    script = (run_dir / "slurm" / "fit.sbatch").read_text()
    assert "--ntasks-per-node=2" in script and "#SBATCH --requeue" in script and "srun " in script
    assert "trainer.devices=2" in (run_dir / "slurm" / "fit.command").read_text()
    assert (run_dir / "config.yaml").is_file() and (run_dir / "slurm" / "fit.config.yaml").is_file()


def test_stop_signals_save_requeue_and_resume(slurm_env, tmp_path, tiny_models, tiny_shards):
    """SIGUSR1 to the whole job, batch shell included (scancel --full), then SIGTERM to the tasks: each time the
    job saves, requeues itself and resumes; every step is trained exactly once."""
    steps = 60
    r = submit(slurm_env, *tiny_job(tmp_path, tiny_models, tiny_shards, f"trainer.max_steps={steps}",
                                    "checkpoint.every_n_steps=20", "checkpoint.keep_last=5"))
    job, run_dir = submitted(r), tmp_path / "runs" / "tiny" / "default"
    ckpts = run_dir / "checkpoints"
    for signal_args, at, restarts in ((["--full", "--signal=USR1"], 20, "0"), (["--signal=TERM"], 40, "1")):
        wait(slurm_env, job, lambda f: ((ckpts / f"step{at:08d}.ckpt").exists() and f.get("JobState") == "RUNNING"
                                        and f.get("Restarts") == restarts) or f.get("JobState") in FINAL, 240, run_dir)
        assert subprocess.run(["scancel", *signal_args, job], env=slurm_env).returncode == 0
        wait(slurm_env, job, lambda f: f.get("Restarts") != restarts or f.get("JobState") in FINAL, 240, run_dir)
    fields = wait(slurm_env, job, lambda f: f.get("JobState") in FINAL, 300, run_dir)
    log = job_log(run_dir)
    assert fields["JobState"] == "COMPLETED" and fields["Restarts"] == "2", log[-4000:]
    saved = [int(m) for m in re.findall(r"(?:USR1|TERM): saved .*hpc-step(\d+)\.ckpt at step", log)]
    assert len(saved) == 2 and 20 <= saved[0] < 40 <= saved[1] < steps, log[-4000:]
    assert "stopping with exit code 0" in log and "stopping with exit code 143" in log
    assert "batch shell: SIGUSR1" in log                                     # the shell noted it and lived on
    assert log.count("scontrol requeue " + job + ": done") == 2
    assert "job " + job + ", restart 2" in log and f"from {ckpts}/hpc-step{saved[1]:08d}.ckpt" in log
    last = torch.load(ckpts / "last.ckpt", weights_only=False)
    assert last["global_step"] == steps and not list(ckpts.glob("hpc-step*"))   # superseded by the final save
    runs = [logged_steps(run_dir, v) for v in range(3)]
    assert runs == [list(range(saved[0])), list(range(saved[0], saved[1])), list(range(saved[1], steps))]
    # the data stream's counts went on from the saved ones: 2 samples per step on rank 0, none read twice
    assert last["ShardDataModule"]["samples_seen"] == 2 * steps


def test_sbatch_refusals_come_back_as_messages(slurm_env, tmp_path, tiny_models, tiny_shards):
    r = submit(slurm_env, *tiny_job(tmp_path, tiny_models, tiny_shards), "partition=nowhere")
    assert r.returncode != 0
    assert "Invalid partition name specified" in r.stderr and "set partition= to one of: debug" in r.stderr
    r = submit(slurm_env, *tiny_job(tmp_path, tiny_models, tiny_shards), "nodes=0")
    assert r.returncode != 0 and "nodes=0: nodes must be >= 1" in r.stderr
