"""Speed options (nexus.models.speed): attention backend, regional compilation, TF32 — the same outputs, and a
bad name refused before anything loads."""
import pytest
import torch
from diffusers import WanTransformer3DModel

from helpers import compose_fit
from nexus.inference.module import BridgeModule
from nexus.models.speed import set_tf32, speed_up
from nexus.training.flops import compute_dtype
from nexus.training.launch import fit

TINY = dict(patch_size=[1, 2, 2], num_attention_heads=2, attention_head_dim=16, in_channels=16, out_channels=16,
            text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=64)


def forward(model):
    g = torch.Generator().manual_seed(0)
    z, c = torch.randn(2, 16, 2, 8, 8, generator=g), torch.randn(2, 20, 32, generator=g)
    with torch.no_grad():
        return model(z, torch.tensor([500.0, 20.0]), c, return_dict=False)[0]


def test_attention_backend_and_regional_compile_keep_the_output():
    torch.manual_seed(0)
    model = WanTransformer3DModel.from_config(TINY).eval()
    ref = forward(model)
    speed_up(model, "_native_math")            # a different kernel for the same attention
    assert torch.allclose(forward(model), ref, atol=1e-5)
    speed_up(model, None, compile=True)        # each WanTransformerBlock compiled (inductor, on the CPU here)
    out = forward(model)
    assert torch.allclose(out, ref, atol=1e-5)
    assert any(type(b).__name__ == "OptimizedModule" or hasattr(b, "_compiled_call_impl") for b in model.blocks)


def test_a_bad_backend_is_refused_before_loading(tmp_path, tiny_models):
    with pytest.raises(ValueError, match=r"sampling.attention='flashy': choose null .* _native_cudnn"):
        BridgeModule(tiny_models["wan"], tiny_models["wan_large"], "out", attention="flashy")
    cfg = compose_fit("recipe=tiny", "model.attention=flashy", "logger=none", f"run.root={tmp_path}/runs")
    with pytest.raises(ValueError, match=r"model.attention='flashy'"):
        fit(cfg)
    assert not (tmp_path / "runs").exists()          # refused before the run folder or the tiny models


def test_tf32_switch_and_the_mfu_peak_follow_it():
    try:
        set_tf32(True)
        assert torch.get_float32_matmul_precision() == "high" and compute_dtype("32-true") == "tf32"
        set_tf32(False)
        assert torch.get_float32_matmul_precision() == "highest" and compute_dtype("32-true") == "fp32"
    finally:
        torch.set_float32_matmul_precision("highest")
