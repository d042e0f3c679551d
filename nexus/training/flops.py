"""Model FLOPs of one stage-1 training sample. Matmuls only: 2 FLOPs per multiply-add; recomputation from
gradient checkpointing is not counted, as usual for MFU.

A module whose weights train costs forward + backward = 3 x forward (the backward computes the gradients of
its inputs and of its weights). A generator that does not train its own weights (generator_train=lora or
frozen) still carries the gradients of its inputs back, for the connector or the LoRA adapters, but computes no
weight gradients: 2 x forward (torch's FLOP counter gives 1.9x on a 4-layer Wan, tests/test_flops.py)."""
from __future__ import annotations

import torch


def wan_forward_flops(cfg: dict, tokens: int, context: int) -> float:
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    per_layer = (
        2 * tokens * 4 * d * d            # self-attention q, k, v, o
        + 2 * 2 * tokens * tokens * d     # self-attention scores and weighted sum
        + 2 * tokens * 2 * d * d          # cross-attention q, o
        + 2 * context * 2 * d * d         # cross-attention k, v over the context
        + 2 * 2 * tokens * context * d    # cross-attention scores and weighted sum
        + 2 * tokens * 2 * d * cfg["ffn_dim"])
    patch = cfg["in_channels"] * cfg["patch_size"][0] * cfg["patch_size"][1] * cfg["patch_size"][2]
    embed = 2 * tokens * patch * d * 2 + 2 * context * (cfg["text_dim"] * d + d * d)
    return cfg["num_layers"] * per_layer + embed


def _transformer_flops(d: int, ffn: int, layers: int, src: int, tgt: int) -> float:
    enc = layers * (2 * src * (4 * d * d + 2 * d * ffn) + 4 * src * src * d)
    dec = layers * (2 * tgt * (4 * d * d + 2 * d * ffn) + 4 * tgt * tgt * d        # self-attn + ffn
                    + 2 * tgt * 2 * d * d + 2 * src * 2 * d * d + 4 * tgt * src * d)  # cross-attn
    return enc + dec


def connector_forward_flops(c: dict, vlm_tokens: int) -> float:
    vision = (2 * vlm_tokens * (c["vlm_dim"] + c["vision_dim"]) * c["vision_dim"]
              + _transformer_flops(c["vision_dim"], c["vision_ffn"], c["vision_layers"], vlm_tokens,
                                   c["vision_queries"]))
    per_token = (2 * (c["vision_dim"] + c["out_dim"]) * c["out_dim"]
                 + _transformer_flops(c["out_dim"], c["adapter_ffn"], c["adapter_layers"], 1, c["adapter_queries"]))
    return vision + c["vision_queries"] * per_token


def train_flops_per_sample(transformer_cfg: dict, connector_cfg: dict | None, latent_tokens: int, context_len: int,
                           vlm_tokens: int, generator_train: str = "full", recompute: bool = False) -> float:
    """Model FLOPs (for MFU); recompute=True: hardware FLOPs under gradient checkpointing, where every block's
    forward runs a second time in the backward (+1x forward of each checkpointed module, for HFU).
    connector_cfg None: a generator trained on its own (model.conditioning=umt5)."""
    extra = 1.0 if recompute else 0.0
    generator = ((3.0 if generator_train == "full" else 2.0) + extra) * wan_forward_flops(
        transformer_cfg, latent_tokens, context_len)
    return generator + ((3.0 + extra) * connector_forward_flops(connector_cfg, vlm_tokens) if connector_cfg else 0.0)


# Dense peak FLOP/s of GPUs Lightning's table lacks or does not recognise by torch's device name ("NVIDIA H200"
# parses to no entry; the paper trains on H200 and H20). NVIDIA's datasheets give tensor-core figures with
# sparsity: dense is half. H200 (SXM): BF16/FP16 1,979 -> 989.5 T, TF32 989 -> 494.5 T, FP32 67 T. H20: BF16/FP16
# 148 T, TF32 74 T, FP32 44 T (dense as published).
PEAK_FLOPS = {"h200": {"bf16": 989.5e12, "fp16": 989.5e12, "tf32": 494.5e12, "fp32": 67e12},
              "h20": {"bf16": 148e12, "fp16": 148e12, "tf32": 74e12, "fp32": 44e12}}


def peak_flops(device_name: str, dtype: str) -> float | None:
    """Our table's dense peak for a CUDA device name and a compute dtype (bf16 | fp16 | tf32 | fp32), or None."""
    name = device_name.lower()
    for chip in ("h200", "h20"):          # h200 first: "h20" is in its name too
        if chip in name:
            return PEAK_FLOPS[chip].get(dtype)
    return None


def precision_dtype(precision: str) -> torch.dtype | None:
    """The dtype a Trainer precision computes in: bf16 / fp16 for the 16-bit ones (mixed or true), None for full
    precision (the parameters' own dtype)."""
    p = str(precision)
    if "bf16" in p:
        return torch.bfloat16
    return torch.float16 if p.startswith("16") else None


def compute_dtype(precision: str) -> str:
    """precision -> the PEAK_FLOPS key: fp32 matmuls run as tf32 unless torch's matmul precision is "highest"."""
    dtype = precision_dtype(precision)
    if dtype is not None:
        return "bf16" if dtype is torch.bfloat16 else "fp16"
    return "fp32" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def available_flops(device: torch.device, precision: str) -> float | None:
    """Dense peak FLOP/s of a CUDA device at a Trainer precision: Lightning's table, else ours; None off CUDA."""
    if device.type != "cuda":
        return None
    from lightning.fabric.utilities.throughput import get_available_flops
    return get_available_flops(device, precision_dtype(precision) or torch.float32) or \
        peak_flops(torch.cuda.get_device_name(device), compute_dtype(precision))
