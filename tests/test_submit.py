"""tools/submit.py without a cluster (--dry-run scripts and bad input), the choice of the checkpoint a run
resumes from, the run directory's owner check, and the SIGUSR1 save-and-stop in one process."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from helpers import ROOT, compose_fit, tiny_overrides
from nexus.slurm.requeue import Requeued
from nexus.slurm.resume import complete_saves, incomplete_saves, newest_checkpoint, prune_hpc_saves
from nexus.slurm.submit import SubmitError, submit
from nexus.training.launch import fit


def dry(*args) -> str:
    job, text = submit([*args, "--dry-run"])
    assert job is None
    return text


def test_dry_run_script_for_four_nodes(tmp_path):
    text = dry("recipe=omni_wan13b", "nodes=4", "gpus_per_node=8", "time=48:00:00", "partition=gpu",
               f"run.root={tmp_path}/runs", "run.name=first", "model.lr=2e-5")
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --time=48:00:00", "#SBATCH --partition=gpu", "#SBATCH --signal=USR1@300",
                 "#SBATCH --requeue", f"#SBATCH --output={tmp_path}/runs/omni_wan13b/first/slurm/%x-%j.out"):
        assert line + "\n" in text, line
    cmd = text[text.index("srun --kill-on-bad-exit=1"):]
    assert f"{sys.executable} tools/fit.py" in cmd
    for arg in ("recipe=omni_wan13b", "run.name=first", "model.lr=2e-5", "trainer.devices=8", "trainer.num_nodes=4"):
        assert f"    {arg}" in cmd, arg
    assert "partition" not in cmd and "nodes=4 " not in cmd          # submit's keys stay out of fit's command
    assert not (tmp_path / "runs").exists()                           # a dry run writes nothing


def test_dry_run_watch_eval_job(tmp_path):
    text = dry("job=watch_eval", "recipe=omni_wan13b", f"run.root={tmp_path}/runs", "run.name=first",
               "eval.every=2")
    assert "#SBATCH --ntasks-per-node=1\n" in text and "#SBATCH --gpus-per-node=1\n" in text
    assert "#SBATCH --signal" not in text
    assert (f"tools/watch_eval.py \\\n    recipe=nexus_wan14b \\\n    run_dir={tmp_path}/runs/omni_wan13b/first \\\n"
            "    eval.every=2") in text


def test_global_batch_size_sets_the_per_gpu_batch():
    assert "    data.batch_size=3" in dry("recipe=tiny", "nodes=2", "gpus_per_node=4", "global_batch_size=24")


@pytest.mark.parametrize("args,message", [
    (["nodes=0"], "nodes=0: nodes must be >= 1"),
    (["gpus_per_node=0"], "gpus_per_node=0: gpus_per_node must be >= 1"),
    (["job=train"], "job=train: choose one of fit, watch_eval"),
    (["recipe=omni_wan14b"], "Could not find 'recipe/omni_wan14b'\n\nAvailable options in 'recipe':\n\tlab_generator\n\tlab_stage1\n\tlumos_release_stage1\n"
                           "\tomni_wan13b\n\ttiny\n\twan13b_t2v"),
    (["model.nonsense=1"], "Could not override 'model.nonsense'"),
    (["trainer.devices=4"], "tools/submit.py sets trainer.devices from nodes=, gpus_per_node="),
    (["nodes=4", "gpus_per_node=8", "global_batch_size=48"],
     "global_batch_size=48 is not divisible by nodes x gpus_per_node x trainer.accumulate_grad_batches = "
     "4 x 8 x 1 = 32: use e.g. global_batch_size=32 or 64"),
])
def test_bad_input_says_what_to_change(args, message):
    with pytest.raises(SubmitError) as e:
        dry("recipe=tiny", *args)
    assert message in str(e.value)


def test_missing_sbatch_suggests_dry_run(tmp_path):
    env = os.environ | {"PATH": str(Path(sys.executable).parent)}    # python, but no sbatch
    r = subprocess.run([sys.executable, "tools/submit.py", "recipe=tiny", f"run.root={tmp_path}/runs"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "error: sbatch is not on the PATH" in r.stderr and "--dry-run prints it" in r.stderr
    assert (tmp_path / "runs" / "tiny" / "default" / "slurm" / "fit.sbatch").is_file()


def test_run_dir_of_another_recipe_is_refused(tmp_path, tiny_models, tiny_shards):
    run_dir = tmp_path / "runs" / "tiny" / "default"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"not used")
    (run_dir / "run.json").write_text('{"recipe": "omni_wan13b", "model_fingerprint": "0"}')
    message = r"holds checkpoints of recipe 'omni_wan13b', not 'tiny'.*run.force_resume=true"
    with pytest.raises(ValueError, match=message):
        fit(compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards)))
    with pytest.raises(SubmitError, match=message):
        dry("recipe=tiny", f"run.root={tmp_path}/runs")
    assert "run.force_resume=true" in dry("recipe=tiny", f"run.root={tmp_path}/runs", "run.force_resume=true")
    (run_dir / "run.json").write_text('{"recipe": "tiny", "model_fingerprint": "0"}')
    with pytest.raises(ValueError, match=r"recipe 'tiny' with another model \(model.connector"):
        fit(compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards)))


def test_newest_complete_checkpoint_wins_and_stale_saves_are_pruned(tmp_path):
    ck = tmp_path / "checkpoints"
    ck.mkdir()

    def make(name, t, folder=False, complete=True):
        p = ck / name
        if folder:                           # a DeepSpeed checkpoint: complete once `latest` is written
            p.mkdir()
            if complete:
                (p / "latest").write_text("checkpoint")
                os.utime(p / "latest", (t, t))
        else:
            p.write_bytes(b"x")
            os.utime(p, (t, t))
        return p

    assert newest_checkpoint(tmp_path) is None
    last = make("last.ckpt", 100)
    hpc1 = make("hpc-step00000010.ckpt", 50)
    assert newest_checkpoint(tmp_path) == last
    hpc2 = make("hpc-step00000012.ckpt", 200, folder=True)
    make("hpc-step00000013.ckpt", 300, folder=True, complete=False)   # a save cut short: never chosen
    assert newest_checkpoint(tmp_path) == hpc2
    prune_hpc_saves(tmp_path, newest_checkpoint(tmp_path))
    assert sorted(p.name for p in ck.iterdir()) == ["hpc-step00000012.ckpt", "last.ckpt"] and not hpc1.exists()
    os.utime(last, (200, 200))
    assert newest_checkpoint(tmp_path) == hpc2                       # a tie in time goes to the known step
    step = make("step00000014.ckpt", 250)                            # a step save is a save like the others
    assert newest_checkpoint(tmp_path) == step
    last.unlink()
    last.symlink_to(step.name)                                       # last.ckpt -> the newest step save
    assert newest_checkpoint(tmp_path) == step and complete_saves(tmp_path) == [hpc2, step]
    (ck / ".step00000016.ckpt.partial").mkdir()                      # a DeepSpeed save cut short
    assert newest_checkpoint(tmp_path) == step
    assert [p.name for p in incomplete_saves(tmp_path)] == [".step00000016.ckpt.partial"]


@pytest.mark.parametrize("signum,code", [(signal.SIGUSR1, 0), (signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_saves_stops_and_the_rerun_resumes(signum, code, tmp_path, tiny_models, tiny_shards):
    class SignalAt(L.Callback):
        def on_train_batch_end(self, trainer, *_):
            if trainer.global_step == 3:
                os.kill(os.getpid(), signum)

    over = tiny_overrides(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=6", "checkpoint.every_n_steps=5")
    with pytest.raises(Requeued) as stopped:
        fit(compose_fit(*over), extra_callbacks=[SignalAt()])
    assert stopped.value.code == code                                         # killed never looks finished
    if signum == signal.SIGINT:                              # after training, Ctrl-C is Ctrl-C again
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    ck = tmp_path / "runs" / "tiny" / "default" / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["hpc-step00000003.ckpt"]   # as the next step begins
    saved = torch.load(ck / "hpc-step00000003.ckpt", weights_only=False)
    assert saved["global_step"] == 3 and saved["ShardDataModule"]["samples_seen"] == 2 * 3   # 2 per step, no more
    assert fit(compose_fit(*over)).global_step == 6
    steps = [sorted({int(r["step"]) for r in csv.DictReader(open(f)) if r.get("train/loss")})
             for f in sorted((ck.parent / "csv").glob("version_*/metrics.csv"))]
    assert steps == [[0, 1, 2], [3, 4, 5]]                               # every step once
    # the finished run's final save supersedes the stop-signal save, which is removed
    assert sorted(p.name for p in ck.iterdir()) == ["last.ckpt", "step00000005.ckpt", "step00000006.ckpt"]
    assert os.readlink(ck / "last.ckpt") == "step00000006.ckpt"
    assert torch.load(ck / "last.ckpt", weights_only=False)["ShardDataModule"]["samples_seen"] == 2 * 6


def test_zero_checkpoint_of_another_world_size_is_refused_at_submit(tmp_path):
    ckpt = tmp_path / "runs" / "tiny" / "default" / "checkpoints" / "last.ckpt"
    (ckpt / "checkpoint").mkdir(parents=True)
    (ckpt / "latest").write_text("checkpoint")
    for r in range(2):
        (ckpt / "checkpoint" / f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt").write_bytes(b"x")
    args = ["recipe=tiny", f"run.root={tmp_path}/runs", "strategy=deepspeed_zero2", "accelerator=cpu"]
    assert "trainer.devices=2" in dry(*args, "gpus_per_node=2")
    with pytest.raises(SubmitError, match="written by 2 GPUs, this job has nodes x gpus_per_node = 4: DeepSpeed "
                                          "cannot re-partition its optimizer state; resume with 2 GPUs"):
        dry(*args, "gpus_per_node=4")
