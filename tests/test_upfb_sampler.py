"""The two-generator sampler on tiny real Wan transformers, checked against diffusers' WanPipeline."""
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

from nexus.upfb.sampler import BridgeConfig, Side, sample


def unipc():
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)


@pytest.fixture(scope="module")
def parts(tiny_models):
    torch.manual_seed(0)
    small = WanTransformer3DModel.from_pretrained(Path(tiny_models["wan"]) / "transformer").eval()
    large = WanTransformer3DModel.from_pretrained(Path(tiny_models["wan"]) / "transformer").eval()
    with torch.no_grad():
        for p in large.parameters():          # a different "large" generator in the same latent space
            p.add_(0.05 * torch.randn_like(p))
    g = torch.Generator().manual_seed(1)
    ctx = {k: torch.randn(1, n, 32, generator=g) for k, n in (("s", 20), ("s0", 20), ("l", 12), ("l0", 12))}
    z = torch.randn(1, 16, 2, 4, 4, generator=g)
    return small, large, ctx, z


def test_large_only_reproduces_wan_pipeline(parts):
    small, large, ctx, z = parts
    pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=large, scheduler=unipc())
    ref = pipe(prompt_embeds=ctx["l"], negative_prompt_embeds=ctx["l0"], latents=z.clone(), num_inference_steps=6,
               guidance_scale=5.0, output_type="latent", height=32, width=32, num_frames=5).frames
    got = sample(z.clone(), unipc(), 6, BridgeConfig(strategy="large_only", cfg_form="standard"),
                 large=Side(large, ctx["l"], ctx["l0"], 5.0), progress=False)
    assert torch.allclose(got, ref, atol=1e-5)
    # batched cond/null forwards give the sequential result
    seq = sample(z.clone(), unipc(), 6, BridgeConfig(strategy="large_only", cfg_form="standard", batched_cfg=False),
                 large=Side(large, ctx["l"], ctx["l0"], 5.0), progress=False)
    assert torch.allclose(got, seq, atol=1e-5)
    # paper CFG form = standard form with s + 1
    paper = sample(z.clone(), unipc(), 6, BridgeConfig(strategy="large_only"),
                   large=Side(large, ctx["l"], ctx["l0"], 4.0), progress=False)
    assert torch.allclose(paper, ref, atol=1e-5)


def test_strategies(parts):
    small, large, ctx, z = parts
    S, L = Side(small, ctx["s"], ctx["s0"]), Side(large, ctx["l"], ctx["l0"])
    run = lambda **kw: sample(z.clone(), unipc(), 5, BridgeConfig(**kw), S, L, progress=False)  # noqa: E731
    small_only, large_only = run(strategy="small_only"), run(strategy="large_only")
    assert not torch.allclose(small_only, large_only)
    assert torch.allclose(run(strategy="switch", switch_step=5), small_only, atol=1e-6)
    assert torch.allclose(run(strategy="switch", switch_step=0), large_only, atol=1e-6)
    # a huge gamma_w keeps w = 1 at every step: with gamma_hf = 1 and no RMS rescaling, UPFB is then exactly
    # the small generator; a tiny gamma_w hands over right after the first step (w = 1 there by Eq. 4)
    trace = []
    out = sample(z.clone(), unipc(), 5, BridgeConfig(gamma_hf=1.0, rms="off", gamma_w=1e6), S, L, progress=False,
                 trace=trace)
    assert [t["w"] for t in trace] == pytest.approx([1.0] * 5) and torch.allclose(out, small_only, atol=1e-5)
    handed = sample(z.clone(), unipc(), 5, BridgeConfig(rms="off", gamma_hf=1.0, gamma_w=1e-6), S, L, progress=False)
    assert torch.allclose(handed, run(strategy="switch", switch_step=1), atol=1e-5)
    upfb_trace = []
    upfb = sample(z.clone(), unipc(), 5, BridgeConfig(), S, L, progress=False, trace=upfb_trace)
    ws = [t["w"] for t in upfb_trace]
    assert ws[0] == pytest.approx(1.0, abs=1e-3) and all(a >= b for a, b in zip(ws, ws[1:]))
    assert [t["sigma"] for t in upfb_trace] == pytest.approx([0.35 + 0.35 * w for w in ws])
    assert torch.isfinite(upfb).all() and not torch.allclose(upfb, small_only) and not torch.allclose(upfb, large_only)


def test_wan22_experts_switch_by_timestep(parts):
    small, large, ctx, z = parts
    side = Side(large, ctx["l"], ctx["l0"], 3.0, transformer_2=small, boundary_ratio=0.875, guidance_2=4.0)
    assert side.expert(900.0) == (large, 3.0) and side.expert(874.0) == (small, 4.0)
    sched = FlowMatchEulerDiscreteScheduler(shift=5.0)
    pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=large, transformer_2=small,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0), boundary_ratio=0.875)
    ref = pipe(prompt_embeds=ctx["l"], negative_prompt_embeds=ctx["l0"], latents=z.clone(), num_inference_steps=4,
               guidance_scale=3.0, guidance_scale_2=4.0, output_type="latent", height=32, width=32, num_frames=5).frames
    got = sample(z.clone(), sched, 4, BridgeConfig(strategy="large_only", cfg_form="standard"), large=side,
                 progress=False)
    assert torch.allclose(got, ref, atol=1e-5)


def test_bad_options():
    with pytest.raises(ValueError, match="strategy='blend'.*upfb"):
        BridgeConfig(strategy="blend")
    with pytest.raises(ValueError, match="switch_step"):
        BridgeConfig(strategy="switch")
    with pytest.raises(ValueError, match="sigma_min <= sigma_max"):
        BridgeConfig(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="strategy=upfb needs the small generator"):
        sample(torch.zeros(1, 16, 1, 2, 2), unipc(), 2, BridgeConfig(), small=None, large=None)
