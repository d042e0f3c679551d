"""The model-FLOP count behind MFU (nexus/training/flops.py) against torch's own FLOP counter on a real Wan."""
import pytest
import torch
from diffusers import WanTransformer3DModel
from torch.utils.flop_counter import FlopCounterMode

from nexus.training.flops import train_flops_per_sample, wan_forward_flops

WAN = dict(patch_size=(1, 2, 2), num_attention_heads=8, attention_head_dim=16, in_channels=16, out_channels=16,
           text_dim=64, freq_dim=64, ffn_dim=256, num_layers=4, rope_max_seq_len=32)


def counted(model, train_weights: bool, checkpointing: bool = False) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs torch counts for one batch; without trained weights the backward still
    carries the gradient to the context (what a connector or LoRA upstream needs)."""
    torch.manual_seed(0)
    model.requires_grad_(train_weights)
    if checkpointing:
        model.enable_gradient_checkpointing()
    x, t = torch.randn(2, 16, 1, 8, 8), torch.tensor([500.0, 300.0])
    context = torch.randn(2, 32, 64, requires_grad=not train_weights)
    with FlopCounterMode(display=False) as counter:
        out = model(x, t, context, return_dict=False)[0]
        forward = counter.get_total_flops()
        out.pow(2).mean().backward()
    return forward, counter.get_total_flops()


def test_forward_flops_and_the_backward_factor_by_training_mode():
    model = WanTransformer3DModel(**WAN)
    cfg = dict(model.config)
    forward, full = counted(model, True)
    _, frozen = counted(model, False)
    # 16 latent tokens per sample (8x8 latents, 2x2 patches), 32 context tokens, batch of 2
    assert 2 * wan_forward_flops(cfg, 16, 32) == pytest.approx(forward, rel=0.05)
    assert full / forward == pytest.approx(3.0, rel=0.05)        # weights train: input and weight gradients
    assert frozen / forward == pytest.approx(2.0, rel=0.07)      # lora / frozen: input gradients only
    per = {mode: train_flops_per_sample(cfg, None, 16, 32, 0, mode) for mode in ("full", "lora", "frozen")}
    assert per["full"] == 3 * wan_forward_flops(cfg, 16, 32) and per["lora"] == per["frozen"] == 2 / 3 * per["full"]


def test_hardware_flops_count_the_recomputed_forward():
    """Under gradient checkpointing the backward runs each block's forward again: torch counts ~4x forward for
    trained weights and ~3x for a frozen generator; model FLOPs (MFU) stay 3x / 2x, hardware FLOPs (HFU) add 1x."""
    model = WanTransformer3DModel(**WAN)
    cfg = dict(model.config)
    forward, full = counted(model, True, checkpointing=True)
    _, frozen = counted(model, False, checkpointing=True)
    assert full / forward == pytest.approx(4.0, rel=0.05)
    assert frozen / forward == pytest.approx(3.0, rel=0.07)
    hw = {m: train_flops_per_sample(cfg, None, 16, 32, 0, m, recompute=True) for m in ("full", "frozen")}
    assert hw["full"] == 4 * wan_forward_flops(cfg, 16, 32) and hw["frozen"] == 3 * wan_forward_flops(cfg, 16, 32)


def test_peak_flops_of_the_gpus_lightning_lacks():
    from lightning.fabric.utilities.throughput import get_available_flops

    from nexus.training.flops import available_flops, compute_dtype, peak_flops
    assert peak_flops("NVIDIA H200", "bf16") == 989.5e12 and peak_flops("NVIDIA H200 NVL", "tf32") == 494.5e12
    assert peak_flops("NVIDIA H20", "bf16") == 148e12 and peak_flops("NVIDIA H20", "fp32") == 44e12
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16") is None        # Lightning's own table has it
    assert compute_dtype("bf16-mixed") == "bf16" and compute_dtype("16-mixed") == "fp16"
    assert compute_dtype("32-true") in ("fp32", "tf32")
    assert available_flops(torch.device("cpu"), "bf16-mixed") is None
    # the H100 is in Lightning's table at the same dense bf16 peak as our H200 entry (same tensor cores)
    assert abs(get_available_flops.__globals__["_CUDA_FLOPS"]["h100 sxm"][torch.bfloat16] - 989.5e12) < 1e12


def test_a_fresh_wan_cast_like_from_pretrained(tmp_path):
    """Benchmarks and random-init training build Wan fresh: in bf16 it must keep the modules diffusers keeps in fp32
    (rope, time embedder, scale_shift_table, norms), exactly as the sampler's from_pretrained(torch_dtype) does."""
    from nexus.models.loading import cast_like_pretrained
    torch.manual_seed(0)
    WanTransformer3DModel(**WAN).save_pretrained(tmp_path / "wan")
    loaded = WanTransformer3DModel.from_pretrained(tmp_path / "wan", torch_dtype=torch.bfloat16)
    built = cast_like_pretrained(WanTransformer3DModel.from_pretrained(tmp_path / "wan"), torch.bfloat16)
    want = {n: t.dtype for n, t in [*loaded.named_parameters(), *loaded.named_buffers()]}
    got = {n: t.dtype for n, t in [*built.named_parameters(), *built.named_buffers()]}
    assert got == want and torch.float32 in want.values() and torch.bfloat16 in want.values()
