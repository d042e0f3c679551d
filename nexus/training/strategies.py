"""Strategy factories for Hydra configs (``_target_: nexus.training.strategies.deepspeed_strategy``).

``deepspeed_strategy`` returns ``AtomicDeepSpeedStrategy`` (Lightning's ``DeepSpeedStrategy`` whose saves appear
only when complete) on CUDA machines and ``CPUDeepSpeedStrategy`` (the same, with gloo) otherwise, so the same
config runs ZeRO 0-3 in CPU tests.

CPU notes:
* ``offload_optimizer=True`` makes DeepSpeed demand its ``DeepSpeedCPUAdam`` (JIT-compiled op) unless the
  config has ``zero_force_ds_cpu_optimizer: False``; ``CPUDeepSpeedStrategy`` sets that by default.
* Under DeepSpeed, ``precision="bf16-mixed"`` does not autocast: DeepSpeed keeps bf16 weights itself and
  Lightning only casts the inputs.
"""
from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy
from lightning.fabric.utilities.seed import reset_seed

_STAGES = (0, 1, 2, 3)


class AtomicDeepSpeedStrategy(DeepSpeedStrategy):
    """DeepSpeed saves that appear only when complete: every rank writes its shards into `.<name>.partial`,
    and once all have (a barrier), rank 0 renames the folder to its name. DeepSpeed itself writes into the
    folder it is given, so a kill mid-save would leave a folder of mixed steps under a live name."""

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options: Any | None = None) -> None:
        from nexus.training.callbacks import publish
        final = Path(self.broadcast(str(filepath)))
        partial = final.with_name(f".{final.name}.partial")
        if self.is_global_zero:
            shutil.rmtree(partial, ignore_errors=True)
            final.parent.mkdir(parents=True, exist_ok=True)
        self.barrier()
        super().save_checkpoint(checkpoint, partial, storage_options)
        self.barrier()                       # every rank's shards are on disk
        if self.is_global_zero:
            publish(partial, final)
        self.barrier()


class CPUDeepSpeedStrategy(AtomicDeepSpeedStrategy):
    """``DeepSpeedStrategy`` that runs on ``accelerator="cpu"`` with the gloo backend (tests, CPU-only boxes)."""

    strategy_name = "deepspeed_cpu"

    def __init__(
        self, *args: Any, process_group_backend: str | None = "gloo", shm_comm: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, process_group_backend=process_group_backend, **kwargs)
        self.shm_comm = shm_comm
        # With offload_optimizer DeepSpeed otherwise rejects torch optimizers and demands DeepSpeedCPUAdam
        # (a JIT-compiled C++ op); on CPU a plain torch optimizer is fine. An explicit config value wins.
        if isinstance(self.config, dict):
            self.config.setdefault("zero_force_ds_cpu_optimizer", False)

    def setup_environment(self) -> None:
        # Stock version raises "only supported on CUDA GPUs" for CPUAccelerator; skip straight to DDP's
        # (accelerator env setup + setup_distributed).
        DDPStrategy.setup_environment(self)

    def setup_distributed(self) -> None:
        # Stock version first runs _validate_device_index_selection, which fails for CPU devices (index None).
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    def _init_deepspeed_distributed(self) -> None:
        if not self.shm_comm:
            import deepspeed

            # DeepSpeed's CPU backend JIT-compiles its shared-memory all-reduce op at init (~2.5 min on 2 cores on
            # first use, needs a C++ toolchain); only inference_all_reduce uses it, ZeRO training never does.
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        super()._init_deepspeed_distributed()

    @property
    def root_device(self) -> torch.device:
        # DeepSpeed reads ``root_device.index`` as its device_rank; give each process its local rank.
        return torch.device("cpu", self.local_rank)


def collective_timeout(minutes: float) -> timedelta:
    """How long a collective (a barrier, an all-reduce) waits for the slowest rank before the run fails. torch's
    default is 30 min; loading tens of GB of weights on every rank from shared storage can take longer."""
    if not minutes > 0:
        raise ValueError(f"strategy.timeout_minutes={minutes} must be > 0")
    return timedelta(minutes=minutes)


def deepspeed_strategy(
    stage: int = 2,
    offload_optimizer: bool = False,
    offload_parameters: bool = False,
    cpu: bool | None = None,
    timeout_minutes: float = 30,
    **kwargs: Any,
) -> DeepSpeedStrategy:
    """DeepSpeed ZeRO ``stage`` strategy; the CPU/gloo variant when ``cpu`` or (``cpu is None`` and no CUDA)."""
    if isinstance(stage, bool) or not isinstance(stage, int) or stage not in _STAGES:
        raise ValueError(f"DeepSpeed ZeRO stage must be one of {list(_STAGES)}, got {stage!r}")
    if cpu is None:
        cpu = not torch.cuda.is_available()
    cls = CPUDeepSpeedStrategy if cpu else AtomicDeepSpeedStrategy
    return cls(stage=stage, offload_optimizer=offload_optimizer, offload_parameters=offload_parameters,
               timeout=collective_timeout(timeout_minutes), **kwargs)


def ddp_strategy(find_unused_parameters: bool = False, timeout_minutes: float = 30, **kwargs: Any) -> DDPStrategy:
    """``DDPStrategy`` with gloo on CPU-only machines (NCCL default otherwise)."""
    kwargs.setdefault("process_group_backend", None if torch.cuda.is_available() else "gloo")
    return DDPStrategy(find_unused_parameters=find_unused_parameters, timeout=collective_timeout(timeout_minutes),
                       **kwargs)
