"""nexus.training.strategies: factory validation/types, and a real 2-process ZeRO-2 run on CPU (gloo)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy

from nexus.training.strategies import AtomicDeepSpeedStrategy, CPUDeepSpeedStrategy, ddp_strategy, deepspeed_strategy

SCRIPT = Path(__file__).parent / "scripts" / "zero_cpu_run.py"


@pytest.mark.parametrize("stage", [-1, 4, "2", 2.0, True, None])
def test_deepspeed_strategy_rejects_bad_stage(stage):
    with pytest.raises(ValueError, match="stage must be one of"):
        deepspeed_strategy(stage=stage)


def test_deepspeed_strategy_types():
    cpu = deepspeed_strategy(stage=3, cpu=True)
    assert isinstance(cpu, CPUDeepSpeedStrategy)
    assert cpu._process_group_backend == "gloo"
    assert cpu.config["zero_optimization"]["stage"] == 3
    gpu = deepspeed_strategy(stage=1, offload_optimizer=True, cpu=False)
    assert type(gpu) is AtomicDeepSpeedStrategy and isinstance(gpu, DeepSpeedStrategy)
    assert isinstance(cpu, AtomicDeepSpeedStrategy)          # saves appear only when complete, on both
    assert gpu.config["zero_optimization"]["stage"] == 1
    assert "offload_optimizer" in gpu.config["zero_optimization"]
    auto = deepspeed_strategy(stage=0)
    assert isinstance(auto, CPUDeepSpeedStrategy) != torch.cuda.is_available()
    # an explicit config value is kept
    cfg = deepspeed_strategy(cpu=True, config={"zero_force_ds_cpu_optimizer": True})
    assert cfg.config["zero_force_ds_cpu_optimizer"] is True


def test_ddp_strategy():
    s = ddp_strategy(find_unused_parameters=True)
    assert isinstance(s, DDPStrategy)
    assert s._ddp_kwargs["find_unused_parameters"] is True
    assert s._process_group_backend == (None if torch.cuda.is_available() else "gloo")


def test_collective_timeout_is_configurable():
    from datetime import timedelta
    assert ddp_strategy()._timeout == timedelta(minutes=30)                 # torch's default, kept as the default
    assert ddp_strategy(timeout_minutes=90)._timeout == timedelta(minutes=90)
    assert deepspeed_strategy(stage=2, timeout_minutes=120)._timeout == timedelta(hours=2)
    with pytest.raises(ValueError, match="strategy.timeout_minutes=0 must be > 0"):
        ddp_strategy(timeout_minutes=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_zero2_cpu_two_processes(tmp_path):
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    ext_dir = tmp_path / "torch_extensions"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1",
           "TORCH_EXTENSIONS_DIR": str(ext_dir)}
    for k in ("LOCAL_RANK", "NODE_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        env.pop(k, None)  # a leftover rank would make Lightning think it was already launched
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "run")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    # CPUDeepSpeedStrategy must not JIT-compile DeepSpeed's shm comm op (minutes on a fresh machine)
    assert not ext_dir.exists() or not any(ext_dir.iterdir())

    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["global_step"] == 3
    assert res["world_size"] == 2
    assert res["strategy"] == "CPUDeepSpeedStrategy"

    init, final = torch.load(tmp_path / "run" / "init.pt"), torch.load(tmp_path / "run" / "final.pt")
    assert init.keys() == final.keys() and final
    assert all(not torch.equal(init[k], final[k]) for k in init), "training did not update every parameter"

    # DeepSpeed layout: <name>.ckpt/ directory with a `latest` tag file, model states and one optimizer shard per rank
    ckpt = Path(res["ckpt"])
    assert ckpt.is_dir() and (ckpt / "latest").read_text().strip() == "checkpoint"
    tag_dir = ckpt / "checkpoint"
    assert (tag_dir / "mp_rank_00_model_states.pt").is_file()
    assert len(list(tag_dir.glob("*zero_pp_rank_*_optim_states.pt"))) == 2

    converted = convert_zero_checkpoint_to_fp32_state_dict(ckpt, tmp_path / "fp32.pt")
    sd = converted["state_dict"]
    assert sd.keys() == final.keys()
    for k, v in final.items():
        assert sd[k].dtype == torch.float32
        torch.testing.assert_close(sd[k], v, rtol=0, atol=0)
    assert torch.load(tmp_path / "fp32.pt", weights_only=False)["global_step"] == 3
