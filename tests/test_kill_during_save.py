"""A run killed (SIGKILL) at any phase of a checkpoint save, then rerun with the same command, ends exactly as
the uninterrupted run: the same weights, optimizer state and per-step losses, bit for bit. A half-written save
is never resumed from; what the kill left is removed by the rerun. Plain checkpoints (one process) and
DeepSpeed ZeRO-2 folders (two CPU ranks)."""
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import ROOT, tiny_overrides

STEPS, EVERY, KILLED_AT = 6, 2, 4        # saves at steps 2, 4, 6; the kill hits the save of step 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(tmp_path, tiny_models, shards, strategy: str, name: str) -> list[str]:
    extra = ["strategy=deepspeed_zero2", "trainer.devices=2"] if strategy == "zero2" else []
    return [*tiny_overrides(tmp_path, tiny_models, shards), f"trainer.max_steps={STEPS}",
            f"checkpoint.every_n_steps={EVERY}", "checkpoint.keep_last=5", f"run.name={name}", *extra]


def launch(args: list[str], marker: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess | None:
    """Run to the end; or, with a marker, until the script marks its self-kill, then kill what is left."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    env |= {"MASTER_PORT": str(free_port()), "WANDB_MODE": "offline"}
    if marker is None:
        r = subprocess.run([sys.executable, "tools/fit.py", *args], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=timeout)
        assert r.returncode == 0, r.stderr[-3000:]
        return r
    p = subprocess.Popen([sys.executable, "tests/scripts/kill_during_save.py", *args], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    end = time.time() + timeout
    while not marker.exists() and p.poll() is None and time.time() < end:
        time.sleep(0.2)
    with_rank1 = p.poll() is None
    try:
        os.killpg(p.pid, signal.SIGKILL)                 # rank 0 is dead; rank 1 waits in a collective
    except ProcessLookupError:
        pass
    err = p.communicate()[1].decode(errors="replace")
    assert marker.exists(), f"the kill window was never reached (alive: {with_rank1}):\n{err[-3000:]}"
    return None


def losses(run_dir: Path) -> dict[int, str]:
    """Logged train/loss by step over all launches (exact strings: a rerun must log the same numbers)."""
    out = {}
    for f in sorted((run_dir / "csv").glob("version_*/metrics.csv")):
        for row in csv.DictReader(open(f)):
            if row.get("train/loss"):
                out.setdefault(int(row["step"]), row["train/loss"])
    return out


def tensors(obj, prefix=""):
    """Every tensor in a nested checkpoint structure, by path."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{prefix}/{i}")


def final_state(run_dir: Path, strategy: str) -> dict[str, torch.Tensor]:
    last = run_dir / "checkpoints" / "last.ckpt"
    if strategy == "plain":
        state = torch.load(last, map_location="cpu", weights_only=False)
        return dict(tensors({"weights": state["state_dict"], "optimizer": state["optimizer_states"],
                             "step": torch.tensor(state["global_step"])}))
    parts = {p.name: torch.load(p, map_location="cpu", weights_only=False) for p in (last / "checkpoint").iterdir()}
    model = parts.pop("mp_rank_00_model_states.pt")
    return dict(tensors({"weights": model["module"], "step": torch.tensor(model["global_step"]),
                         "optimizer": {k: v["optimizer_state_dict"] for k, v in parts.items()}}))


def straight(tmp_path_factory, tiny_models, tiny_shards, strategy: str):
    tmp = tmp_path_factory.mktemp(f"straight_{strategy}")
    launch(command(tmp, tiny_models, tiny_shards, strategy, "straight"))
    run = tmp / "runs" / "tiny" / "straight"
    return final_state(run, strategy), losses(run)


@pytest.fixture(scope="module")
def straight_plain(tmp_path_factory, tiny_models, tiny_shards):
    return straight(tmp_path_factory, tiny_models, tiny_shards, "plain")


@pytest.fixture(scope="module")
def straight_zero2(tmp_path_factory, tiny_models, tiny_shards):
    return straight(tmp_path_factory, tiny_models, tiny_shards, "zero2")


# the phases of a save; a DeepSpeed run takes ~25 s to start on 2 cores, so each phase once where it matters:
# plain: the file half written / whole but last.ckpt not yet switched; ZeRO-2: model states written but no
# optimizer shard / a 0-byte shard (the two failures seen before saves were atomic) / all written, not renamed
PHASES = [("plain", "mid-write"), ("plain", "before-link"),
          ("zero2", "after-model"), ("zero2", "empty-shard"), ("zero2", "before-rename")]


@pytest.mark.slow
@pytest.mark.parametrize("strategy,phase", PHASES, ids=[f"{s}-{p}" for s, p in PHASES])
def test_killed_during_a_save_then_rerun_equals_the_uninterrupted_run(strategy, phase, request, tmp_path, tiny_models,
                                                                        tiny_shards):
    expected, expected_losses = request.getfixturevalue(f"straight_{strategy}")     # one uninterrupted run each
    args = command(tmp_path, tiny_models, tiny_shards, strategy, "killed")
    marker = tmp_path / "killed.txt"
    launch([phase, str(KILLED_AT), str(marker), *args], marker)
    run = tmp_path / "runs" / "tiny" / "killed"
    ck = run / "checkpoints"
    visible = sorted(p.name for p in ck.iterdir() if not p.name.startswith("."))
    if phase == "before-link":            # the save is whole and in place; last.ckpt still names the step before
        assert visible == ["last.ckpt", "step00000002.ckpt", "step00000004.ckpt"]
        assert os.readlink(ck / "last.ckpt") == "step00000002.ckpt"
    else:                                 # nothing of the killed save under a live name
        assert visible == ["last.ckpt", "step00000002.ckpt"], visible
        assert [p.name for p in ck.iterdir() if p.name.startswith(".")], "the kill left no partial save"
    r = launch(args)
    resumed_from = "step00000004.ckpt" if phase == "before-link" else "step00000002.ckpt"
    assert f"from {ck / resumed_from}" in r.stderr + r.stdout
    assert not [p.name for p in ck.iterdir() if p.name.startswith(".")]      # the leftovers are gone
    got = final_state(run, strategy)
    assert got.keys() == expected.keys()
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    assert losses(run) == expected_losses and len(expected_losses) == STEPS
