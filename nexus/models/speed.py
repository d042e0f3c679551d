"""Speed options of the Wan generators, the same for training and sampling (docs/training.md, "Speed options"):

  attention  diffusers' attention backend (ModelMixin.set_attention_backend): null keeps diffusers' default
             (torch's scaled_dot_product_attention); e.g. _native_cudnn, _native_flash, flash (the flash-attn
             package), _flash_3 (FlashAttention-3, Hopper), sage
  compile    regional torch.compile (ModelMixin.compile_repeated_blocks): each WanTransformerBlock is compiled
             once and reused by every block, so compiling costs one block's time, not the model's
  tf32       fp32 matmuls on tensor cores (torch.set_float32_matmul_precision("high")); bf16 work is unaffected
"""
from __future__ import annotations

import torch


def attention_backends() -> list[str]:
    from diffusers.models.attention_dispatch import AttentionBackendName
    return [b.value for b in AttentionBackendName]


def check_speed(attention: str | None, where: str) -> None:
    """A bad backend name is refused before any weights load."""
    if attention is not None and attention not in attention_backends():
        raise ValueError(f"{where}.attention={attention!r}: choose null (diffusers' default) or one of "
                         f"{', '.join(attention_backends())}")


def speed_up(model: torch.nn.Module, attention: str | None = None, compile: bool = False) -> torch.nn.Module:
    """Apply the attention backend and regional compilation to a diffusers Wan transformer, in place."""
    if attention is not None:
        model.set_attention_backend(attention)    # diffusers checks the backend's package and device here
    if compile:
        model.compile_repeated_blocks(fullgraph=True)
    return model


def set_tf32(enabled: bool) -> None:
    torch.set_float32_matmul_precision("high" if enabled else "highest")


def check_accelerator(accelerator: str, key: str = "trainer.accelerator") -> None:
    """A GPU asked for on a machine without one, named by its key (Lightning says it in its own words, later)."""
    import torch
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"{key}={accelerator}: this machine has no CUDA GPU (torch.cuda.is_available() is False"
                         f"{', a CPU build of torch' if torch.version.cuda is None else ''}); use {key}=cpu or auto")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{key}=mps: MPS is not available on this machine; use {key}=cpu or auto")
