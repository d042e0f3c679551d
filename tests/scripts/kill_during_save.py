"""Run tools/fit.py as a user would, but SIGKILL this process at one phase of one checkpoint save; used by
tests/test_kill_during_save.py. Before dying it writes MARKER, so the test knows the window was hit and can
kill what is left (the other ranks, blocked in a collective).

  python tests/scripts/kill_during_save.py PHASE STEP MARKER <tools/fit.py overrides ...>

PHASE (each at the save of step STEP, on global rank 0, which runs this script; Lightning restarts the other
ranks with plain tools/fit.py):
  mid-write       the save's file half written (plain: the .tmp file; DeepSpeed: the model states)
  after-model     DeepSpeed: model states written, optimizer shards not yet
  empty-shard     DeepSpeed: this rank's optimizer shard created, 0 bytes
  before-rename   every byte written, not yet renamed into place
  before-link     renamed into place, last.ckpt still pointing at the previous save
"""
import io
import os
import runpy
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import nexus.training.callbacks as checkpoints  # noqa: E402

PHASE, STEP, MARKER = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
TARGET = f"step{STEP:08d}.ckpt"


def die(where: str) -> None:
    MARKER.write_text(f"{PHASE} at {where}\n")
    os.kill(os.getpid(), signal.SIGKILL)


_save = torch.save


def save(obj, f, *args, **kwargs):
    name = str(getattr(f, "name", f))
    if TARGET in name:
        if PHASE == "mid-write" and (not isinstance(f, (str, os.PathLike)) or "model_states" in name):
            buf = io.BytesIO()
            _save(obj, buf)
            data = buf.getvalue()[: len(buf.getvalue()) // 2]
            if isinstance(f, (str, os.PathLike)):
                Path(f).write_bytes(data)
            else:
                f.write(data)
                f.flush()
            die(name)
        if PHASE == "after-model" and "optim_states" in name:
            die(name)
        if PHASE == "empty-shard" and "optim_states" in name:
            open(name, "wb").close()
            die(name)
    return _save(obj, f, *args, **kwargs)


_publish = checkpoints.publish


def publish(partial, final):
    if PHASE == "before-rename" and Path(final).name == TARGET:
        die(str(partial))
    return _publish(partial, final)


_link = checkpoints.StepCheckpoint._link_checkpoint


def link(trainer, filepath, linkpath):
    if PHASE == "before-link" and Path(filepath).name == TARGET:
        die(str(linkpath))
    return _link(trainer, filepath, linkpath)


torch.save = save
checkpoints.publish = publish
checkpoints.StepCheckpoint._link_checkpoint = staticmethod(link)
sys.argv = [str(ROOT / "tools" / "fit.py"), *sys.argv[4:]]
runpy.run_path(sys.argv[0], run_name="__main__")
