import threading

import pytest
import torch

from nexus.training.callbacks import AtomicCheckpointIO, StepCheckpoint


def test_atomic_checkpoint_never_leaves_a_truncated_file(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 3, "w": torch.ones(3)}, path)
    with pytest.raises(Exception):
        io.save_checkpoint({"global_step": 4, "bad": threading.Lock()}, path)    # fails while pickling
    assert torch.load(path, weights_only=False)["global_step"] == 3                # the old one is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]             # and no temporary left


def test_step_checkpoint_validates():
    with pytest.raises(ValueError, match="checkpoint.every_n_steps=0"):
        StepCheckpoint("x", 0, 3)
