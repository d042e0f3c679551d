"""UPFB inference cost: per-step time of `upfb` vs `large_only` (same latents, same run) and the share of
a step spent in the fusion itself; prints a table and writes JSON.

  python tools/bench_sample.py                           # CPU: tiny generators + fusion at the real latent shape
  python tools/bench_sample.py --preset --frames 81 --height 480 --width 832 --steps 4    # GPU, random weights,
                                                         # Wan2.1 1.3B + 14B architectures (about 31 GB in bf16)
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402
from nexus.benchmarks import clip_parser, peak_gib, reset_peak, timed  # noqa: E402
from nexus.shapes import check_clip_shape, latent_shape  # noqa: E402

REAL_LATENT = (16, 21, 60, 104)     # 81 x 480 x 832


def planned_gib(small, large, a, dtype) -> float:
    """The memory plan for this run (both generators resident, one guided forward at a time): weights as built
    plus the traced forward activations (nexus.plan.activations), in GiB."""
    from nexus.models.conditioning import WAN_TEXT_LEN
    from nexus.plan import activations as act
    weights = sum(p.numel() * p.element_size() for m in (small, large) for p in m.parameters())
    shape = lambda n: act.StepShape(1, a.frames, a.height, a.width, n)      # noqa: E731
    fwd = max(act.generator_forward(act.freeze(dict(small.config)), shape(a.context_len), dtype),
              act.generator_forward(act.freeze(dict(large.config)), shape(WAN_TEXT_LEN), dtype))
    return (weights + fwd) / 2 ** 30


def main(argv=None) -> None:
    p = clip_parser(__doc__, "real Wan2.1 1.3B/14B architectures, random weights")
    p.add_argument("--steps", type=checks.positive_int, default=6, help="sampling steps per timed run")
    p.add_argument("--repeats", type=checks.positive_int, default=3)
    p.add_argument("--context-len", type=checks.positive_int, default=2560,
                   help="the small generator's context length (sampling.context_len; default 2560)")
    p.add_argument("--attention", default=None, help="diffusers attention backend (docs/training.md, 'Speed options'); default SDPA")
    p.add_argument("--compile", action="store_true", help="regional torch.compile of both generators")
    p.add_argument("--small-device", default=None,
                   help="the small generator on this device (e.g. cuda:1), its forward concurrent with the large one's")
    p.add_argument("--out", default="bench/sample.json")
    a = p.parse_args(argv)
    check_clip_shape(a.frames, a.height, a.width, keys=("--frames", "--height", "--width"))
    out = checks.output_file("--out", a.out)
    if a.small_device:
        checks.device("--small-device", a.small_device)
    import torch
    from diffusers import WanTransformer3DModel

    from nexus.upfb.solver import make_scheduler
    from nexus.models.conditioning import WAN_TEXT_LEN
    from nexus.models.loading import cast_like_pretrained
    from nexus.models.presets import WAN_T2V_1_3B, WAN_T2V_14B
    from nexus.models.speed import check_speed, speed_up
    from nexus.models.tiny import ensure_tiny_models
    from nexus.upfb.fusion import fuse
    from nexus.upfb.sampler import BridgeConfig, Side, sample
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    if a.preset:     # the dtypes from_pretrained(torch_dtype=bf16) gives, as the sampler loads them
        small = cast_like_pretrained(WanTransformer3DModel(**WAN_T2V_1_3B), dt).to(dev).eval()
        large = cast_like_pretrained(WanTransformer3DModel(**WAN_T2V_14B), dt).to(dev).eval()
    else:
        folders = ensure_tiny_models(a.tiny_models)
        small = WanTransformer3DModel.from_pretrained(Path(folders["wan"]) / "transformer", torch_dtype=dt).to(dev).eval()
        large = WanTransformer3DModel.from_pretrained(Path(folders["wan_large"]) / "transformer",
                                                      torch_dtype=dt).to(dev).eval()
    check_speed(a.attention, "--attention")
    for m in (small, large):
        speed_up(m, a.attention, a.compile)
    text_dim = small.config.text_dim
    g = torch.Generator().manual_seed(0)
    ctx = lambda n: torch.randn(1, n, text_dim, generator=g).to(dev, dt)    # noqa: E731
    # the sampler's context lengths: sampling.context_len for the small generator, Wan's 512 for the large one
    sdev = torch.device(a.small_device) if a.small_device else dev
    small.to(sdev)
    S = Side(small, ctx(a.context_len).to(sdev), ctx(a.context_len).to(sdev))
    L = Side(large, ctx(WAN_TEXT_LEN), ctx(WAN_TEXT_LEN))
    z = torch.randn(1, *latent_shape(a.frames, a.height, a.width), generator=g).to(dev)

    def run(strategy):
        return lambda: sample(z.clone(), make_scheduler("unipc", 5.0), a.steps, BridgeConfig(strategy=strategy),
                              S, L, progress=False, concurrent=a.small_device is not None)
    run("upfb")()                                  # warm-up (kernels, allocator, compilation)
    per_step, peak = {}, {}
    for s in ("large_only", "upfb", "small_only"):
        reset_peak(dev)
        per_step[s] = timed(run(s), dev, a.repeats) / a.steps
        peak[s] = peak_gib(dev)
    planned = planned_gib(small, large, a, dt)
    vs = torch.randn_like(z)
    fusion = timed(lambda: fuse(vs, vs * 0.5, 0.5, 0.5), dev, a.repeats * 3)
    real = torch.randn(1, *REAL_LATENT, generator=g).to(dev)
    fusion_real = timed(lambda: fuse(real, real * 0.5, 0.5, 0.5), dev, a.repeats)
    row = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "preset": a.preset,
           "shape": [a.frames, a.height, a.width], "steps": a.steps, "repeats": a.repeats,
           "context_len": {"small": a.context_len, "large": WAN_TEXT_LEN},
           "attention": a.attention or "default (SDPA)", "compile": a.compile,
           "small_device": str(sdev),
           "s_per_step": per_step, "upfb_over_large_only": per_step["upfb"] / per_step["large_only"],
           "peak_allocated_gib": peak, "planned_allocated_gib": planned,
           "fusion_s": fusion, "fusion_share_of_upfb_step": fusion / per_step["upfb"],
           "fusion_s_at_real_latent": fusion_real, "real_latent": list(REAL_LATENT)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2))
    print("\n| device | shape | large_only s/step | upfb s/step | small_only s/step | upfb / large_only | fusion share "
          "| fusion at 16x21x60x104 |\n|" + "---|" * 8)
    print(f"| {row['device']} | {'x'.join(map(str, row['shape']))} | {per_step['large_only']:.4f} | "
          f"{per_step['upfb']:.4f} | {per_step['small_only']:.4f} | {row['upfb_over_large_only']:.2f}x | "
          f"{100 * row['fusion_share_of_upfb_step']:.1f}% | {fusion_real * 1000:.1f} ms |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
