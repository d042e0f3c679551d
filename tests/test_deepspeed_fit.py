"""The real stage-1 run under DeepSpeed ZeRO-2 on two CPU processes (gloo), resumed, then exported.

Lightning starts the second process by re-running the command line, so this goes through tools/fit.py in a
subprocess, exactly as a user would run it."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import ROOT
from nexus.export import export_checkpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fit_cli(tmp_path, tiny_models, shards, max_steps):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    env |= {"MASTER_PORT": str(free_port()), "WANDB_MODE": "offline"}
    cmd = [sys.executable, "tools/fit.py", "strategy=deepspeed_zero2", "trainer.devices=2",
           f"trainer.max_steps={max_steps}", "checkpoint.every_n_steps=2", f"run.root={tmp_path}/runs",
           f"paths.wan={tiny_models['wan']}", f"paths.vlm={tiny_models['vlm']}", "paths.tiny_models=null",
           f"data.shards={shards}", "logger=csv", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(tmp_path) / "runs" / "tiny" / "default"


@pytest.mark.slow
def test_zero2_two_cpu_processes_resume_and_export(tmp_path, tiny_models, tiny_shards):
    run = fit_cli(tmp_path, tiny_models, tiny_shards, max_steps=2)
    last = run / "checkpoints" / "last.ckpt"
    assert (last / "latest").is_file()
    parts = sorted(p.name for p in (last / "checkpoint").iterdir())
    assert parts == ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt",
                     "zero_pp_rank_1_mp_rank_00_optim_states.pt"]      # optimizer state sharded over 2 ranks
    step2 = torch.load(last / "checkpoint" / "mp_rank_00_model_states.pt", weights_only=False)
    assert step2["global_step"] == 2

    run = fit_cli(tmp_path, tiny_models, tiny_shards, max_steps=3)       # same command, longer: resumes
    state = torch.load(last / "checkpoint" / "mp_rank_00_model_states.pt", weights_only=False)
    assert state["global_step"] == 3
    log = (run / "csv" / "version_1" / "metrics.csv").read_text().splitlines()
    steps = {int(line.split(",")[list(log[0].split(",")).index("step")]) for line in log[1:]}
    assert steps == {2}                                                   # only the new step was trained

    out = export_checkpoint(last, tmp_path / "export", dtype="fp32")
    module = state["module"]   # ZeRO-2 keeps whole fp32 parameters in the model-states file: an independent copy
    conn = load_file(str(out / "connector" / "model.safetensors"))
    assert conn.keys() == {k[len("connector."):] for k in module if k.startswith("connector.")}
    for k, v in conn.items():
        assert torch.equal(v, module[f"connector.{k}"].float()), k
    tr = load_file(str(out / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert torch.equal(tr["proj_out.weight"], module["transformer.proj_out.weight"].float())
    assert not torch.equal(module["connector.markers"], step2["module"]["connector.markers"])
