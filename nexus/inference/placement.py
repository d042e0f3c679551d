"""Which of the sampler's models sit on the device in each phase of a batch (sampling.offload, sampling.encoders).
One table serves the sampler (BridgeModule.place) and its memory plan (nexus.plan.sample).

  offload=none   every model on the device throughout (the encoders only while encoding)
  offload=model  each model only in the phase that runs it; Wan2.2-A14B's experts one at a time (the default)
  offload=group  as model, the generators streaming their blocks from the CPU (diffusers' group offloading)
  encoders=cpu   UMT5, the VLM and the connector encode on the CPU (the reference's t5_cpu)
  small_device   the small generator on another device (`next`: the GPU after the rank's), its forward running
                 at the same time as the large one's"""
from __future__ import annotations

OFFLOAD = ("none", "model", "group")
ENCODERS = ("device", "cpu")
PHASES = ("encode", "sample", "decode")
MODELS = ("umt5", "vlm", "connector", "small", "large", "large_2", "vae")


def check_placement(offload: str, encoders: str, small_device: str = "same") -> None:
    if small_device not in ("same", "next"):
        try:
            import torch
            torch.device(small_device)
        except (RuntimeError, TypeError):
            raise ValueError(f"sampling.small_device={small_device!r}: same, next or a device such as cuda:1") from None
    if offload not in OFFLOAD:
        raise ValueError(f"sampling.offload={offload!r}: choose one of {OFFLOAD}")
    if encoders not in ENCODERS:
        raise ValueError(f"sampling.encoders={encoders!r}: choose one of {ENCODERS}")


def resident(phase: str, offload: str, encoders: str) -> set[str]:
    """The models on the device during `phase`. Under offload=model|group, `large` stands for whichever expert
    runs (the sampler swaps them at the boundary); under none both experts stay."""
    encoding = {"umt5", "vlm", "connector"} if encoders == "device" else set()
    if offload == "none":
        kept = {"small", "large", "large_2", "vae"} | (encoding - {"umt5", "vlm"})
        return kept | (encoding if phase == "encode" else set())
    return {"encode": encoding, "sample": {"small", "large"}, "decode": {"vae"}}[phase]
