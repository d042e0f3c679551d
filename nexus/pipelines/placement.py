"""Which of the pipeline's models sit on the device in each phase of a call (sampling.offload, sampling.encoders).
One table serves the pipeline (LumosNexusPipeline.enable_phase_offload) and its memory plan (nexus.plan.sample).

  offload=none   every model on the device throughout (the encoders only while encoding)
  offload=model  each model only in the phase that runs it; Wan2.2-A14B's experts one at a time (the default)
  offload=group  as model, the generators streaming their blocks from the CPU (diffusers' group offloading)
  encoders=cpu   UMT5, the VLM and the connector encode on the CPU (the reference's t5_cpu)
  small_device   the small generator on another device (`next`: the GPU after the rank's), its forward running
                 at the same time as the large one's

Why not diffusers' `enable_model_cpu_offload` for offload=model: its hooks keep one model on the device at a time,
moving the previous one off when the next one runs. UPFB calls the small and the large generator at every step, so
those hooks would move both generators (a 14B and a 1.3B) across PCIe twice per step; this table keeps both on the
device for the whole sampling phase and moves each model once per call. diffusers' offload methods remain on the
pipeline (tests/test_pipeline.py compares them with this placement on a GPU), as does `vae.enable_tiling()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

OFFLOAD = ("none", "model", "group")
ENCODERS = ("device", "cpu")
PHASES = ("encode", "sample", "decode")
MODELS = ("umt5", "vlm", "connector", "small", "large", "large_2", "vae")
# the table's names -> the pipeline's components
COMPONENT = {"umt5": "text_encoder", "vlm": "vlm", "connector": "connector", "small": "transformer_small",
             "large": "transformer", "large_2": "transformer_2", "vae": "vae"}


def check_placement(offload: str, encoders: str, small_device: str = "same") -> None:
    if small_device not in ("same", "next"):
        try:
            torch.device(small_device)
        except (RuntimeError, TypeError):
            raise ValueError(f"sampling.small_device={small_device!r}: same, next or a device such as cuda:1") from None
    if offload not in OFFLOAD:
        raise ValueError(f"sampling.offload={offload!r}: choose one of {OFFLOAD}")
    if encoders not in ENCODERS:
        raise ValueError(f"sampling.encoders={encoders!r}: choose one of {ENCODERS}")


def resident(phase: str, offload: str, encoders: str) -> set[str]:
    """The models on the device during `phase`. Under offload=model|group, `large` stands for whichever expert
    runs (the pipeline swaps them at the boundary); under none both experts stay."""
    encoding = {"umt5", "vlm", "connector"} if encoders == "device" else set()
    if offload == "none":
        kept = {"small", "large", "large_2", "vae"} | (encoding - {"umt5", "vlm"})
        return kept | (encoding if phase == "encode" else set())
    return {"encode": encoding, "sample": {"small", "large"}, "decode": {"vae"}}[phase]


def small_device(want: str, device: torch.device) -> torch.device:
    """sampling.small_device: `same` (the rank's device), `next` (the CUDA device after it: give the ranks every
    other GPU, e.g. trainer.devices=[0,2,4,6]) or a device name."""
    if want == "same":
        return device
    if want == "next":
        if device.type != "cuda" or device.index + 1 >= torch.cuda.device_count():
            raise ValueError(f"sampling.small_device=next: no CUDA device after {device}; give each rank every other "
                             f"GPU (trainer.devices=[0,2,...]) or use small_device=same")
        return torch.device("cuda", device.index + 1)
    return torch.device(want)


@dataclass
class PhasePlacement:
    """The placement of one pipeline: `place(pipe, phase)` before each phase, `swap(pipe, expert)` before each
    large forward. pinned: models it never moves (evaluation during training: the run's own)."""
    device: torch.device
    offload: str = "model"
    encoders: str = "device"
    small: str = "same"
    pinned: tuple = ()
    grouped: list = field(default_factory=list)

    def __post_init__(self):
        check_placement(self.offload, self.encoders, self.small)
        self.device = torch.device(self.device)

    @property
    def small_device(self) -> torch.device:
        return small_device(self.small, self.device)

    def _fixed(self, m) -> bool:
        return any(m is p for p in self.pinned) or any(m is g for g in self.grouped)

    def place(self, pipe, phase: str) -> None:
        """Every model `phase` does not run to the CPU first, so memory is freed before more arrives, then the rest
        to its device."""
        models = {n: getattr(pipe, COMPONENT[n], None) for n in MODELS}
        movable = {n: m for n, m in models.items() if m is not None and not self._fixed(m)}
        want = resident(phase, self.offload, self.encoders)
        for name, m in movable.items():
            if name not in want:
                m.to("cpu")
        if phase == "sample" and self.offload == "group":
            self._group_offload(pipe)
        for name, m in movable.items():
            if name in want and not self._fixed(m):
                m.to(self.small_device if name == "small" else self.device)

    def _group_offload(self, pipe) -> None:
        """diffusers' group offloading of the generators: blocks stream in from the CPU, one ahead on a stream."""
        for m in (pipe.transformer_small, pipe.transformer, pipe.transformer_2):
            if m is None or self._fixed(m):
                continue
            m.to("cpu")
            m.enable_group_offload(onload_device=self.small_device if m is pipe.transformer_small else self.device,
                                   offload_device=torch.device("cpu"), offload_type="block_level",
                                   num_blocks_per_group=1, use_stream=self.device.type == "cuda")
            self.grouped.append(m)

    def swap(self, pipe, model: torch.nn.Module) -> None:
        """Wan2.2-A14B under offload=model: the expert about to run comes to the device, the other leaves first."""
        if self.offload != "model" or pipe.transformer_2 is None or any(model is p for p in self.pinned):
            return
        other = pipe.transformer_2 if model is pipe.transformer else pipe.transformer
        other.to("cpu")
        model.to(self.device)
