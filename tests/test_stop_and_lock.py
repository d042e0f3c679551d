"""One live process per run or sample folder (nexus.folder_lock), and stop signals in sampling and training:
exit codes 143 / 130, no partial video, the rerun finishing the rest."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest

from helpers import ROOT, compose_fit, tiny_overrides
from nexus.errors import UserError
from nexus.folder_lock import acquire, holder, lock_path
from nexus.slurm.requeue import Requeued
from nexus.training.launch import fit


# ---- the lock itself -------------------------------------------------------------------------------------------
def test_a_second_holder_is_refused_with_the_first_ones_pid_and_host(tmp_path):
    folder = tmp_path / "runs" / "a"
    first = acquire(folder, "choose another run.name")
    assert not folder.exists() and lock_path(folder) == tmp_path / "runs" / ".a.lock"
    assert holder(folder)["pid"] == os.getpid()
    other = subprocess.run([sys.executable, "-c", "import sys; from nexus.folder_lock import acquire; "
                            f"acquire({str(folder)!r}, 'choose another run.name')"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert other.returncode != 0
    assert f"{folder} is being written by another process (pid {os.getpid()} on " in other.stderr
    assert "wait for it to end, or choose another run.name" in other.stderr
    first.release()
    assert not lock_path(folder).exists()
    again = acquire(folder, "x")       # released: free again
    assert again.took_over is None
    again.release()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    folder = tmp_path / "out"
    holder_proc = subprocess.Popen([sys.executable, "-c", "import time; from nexus.folder_lock import acquire; "
                                    f"acquire({str(folder)!r}, 'x'); print('held', flush=True); time.sleep(60)"],
                                   cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder_proc.stdout.readline().strip() == "held"
    with pytest.raises(UserError, match=f"pid {holder_proc.pid} on"):
        acquire(folder, "x")
    holder_proc.kill()
    holder_proc.wait()
    lock = acquire(folder, "x")        # SIGKILL left the file; the kernel dropped the flock
    assert lock.took_over["pid"] == holder_proc.pid
    assert holder(folder)["pid"] == os.getpid()
    lock.release()


# ---- fit --------------------------------------------------------------------------------------------------------
def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < end, f"{path} did not appear"
        time.sleep(0.2)


def test_two_fits_into_one_folder_only_one_trains(tmp_path, tiny_models, tiny_shards):
    over = tiny_overrides(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=2000", "checkpoint.every_n_steps=1000")
    command = [sys.executable, "tools/fit.py", "recipe=tiny", *over]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "tiny" / "default"
    _wait_for(lock_path(run_dir), first)
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, second.stderr[-2000:]
    assert second.stderr.startswith(f"error: {run_dir} is being written by another process (pid {first.pid} on ")
    assert "choose another run.name (or run.dir)" in second.stderr
    _wait_for(run_dir / "run.json", first)
    first.send_signal(signal.SIGINT)                   # the first one saves and stops (it would train 2000 steps)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 130, err[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert len(info["launches"]) == 1                  # the second launch changed nothing
    assert not lock_path(run_dir).exists()


def test_ctrl_c_twice_in_fit_stops_at_once_with_130(tmp_path, tiny_models, tiny_shards):
    class CtrlCTwice(L.Callback):
        def on_train_batch_end(self, trainer, *_):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)

    over = tiny_overrides(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=6", "checkpoint.every_n_steps=5")
    with pytest.raises(Requeued) as stopped:
        fit(compose_fit(*over), extra_callbacks=[CtrlCTwice()])
    assert stopped.value.code == 130
    ck = tmp_path / "runs" / "tiny" / "default" / "checkpoints"
    assert not list(ck.glob("*.ckpt"))                 # at once: no stop-signal save


# ---- sample -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_drops_the_video_in_progress_and_the_rerun_finishes(signum, code, tmp_path, tiny_models):
    n = 8
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"a shape number {i}"}) + "\n" for i in range(n)))
    out = tmp_path / "out"
    command = [sys.executable, "tools/sample.py", f"prompt_file={prompts}", f"out_dir={out}",
               f"paths.small={tiny_models['wan']}", f"paths.large={tiny_models['wan_large']}",
               f"paths.vlm={tiny_models['vlm']}", "paths.tiny_models=null", "sampling.num_steps=120",
               "sampling.progress=false"]             # a few seconds a video
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(out / "00000-a-shape-number-0.mp4", proc, 300)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "the video in progress is dropped" in err
    done = sorted(p.name for p in out.glob("*.mp4"))
    assert 1 <= len(done) < n
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]       # no partial video
    assert not lock_path(out).exists()
    if signum == signal.SIGTERM:
        again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        assert f"{n} prompts, {len(done)} already in {out} with these settings, {n - len(done)} to sample" \
            in again.stdout
        assert len(list(out.glob("*.mp4"))) == n


def test_sampling_into_a_folder_another_process_writes_is_refused(tmp_path, tiny_models):
    from test_sample import base, compose_sample
    from nexus.inference.launch import sample
    out = tmp_path / "out"
    held = subprocess.Popen([sys.executable, "-c", "import time; from nexus.folder_lock import acquire; "
                             f"acquire({str(out)!r}, 'x'); print('held', flush=True); time.sleep(60)"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"{out} is being written by another process \(pid {held.pid} on .*"
                                            r"choose another run.name \(or out_dir\)"):
            sample(compose_sample(*base(tmp_path, tiny_models, "prompt=x", f"out_dir={out}")))
        assert not out.exists()
    finally:
        held.kill()
        held.wait()
