"""How far apart are two generators' latent spaces? MMD between their predictions on shared inputs (paper
Table 12: about 0.5 within the Wan2.1 VAE family, 1-3 across VAEs).

Both generators see the same noisy latents, timesteps and UMT5 prompt embeddings; their clean-latent
predictions x0 = z_t - t v (per latent token, C-dim) are compared with an RBF-kernel MMD.

  python tools/latent_mmd.py --small $NEXUS_WAN_PATH --large $NEXUS_WAN_LARGE_PATH --frames 81 --height 480 --width 832
  python tools/latent_mmd.py --small runs/.tiny_models/wan --large runs/.tiny_models/wan_large --frames 9 --height 32 --width 32
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402
from nexus.shapes import check_clip_shape, latent_shape  # noqa: E402

PROMPTS = ["a red car drives along a coastal road at sunset", "a cat jumps onto a table",
           "waves crash on a rocky beach", "a chef slices vegetables in a kitchen"]


def main(argv=None) -> None:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", required=True, help="Wan folder whose UMT5 encodes the prompts")
    p.add_argument("--large", required=True)
    p.add_argument("--frames", type=checks.positive_int, default=81)
    p.add_argument("--height", type=checks.positive_int, default=480)
    p.add_argument("--width", type=checks.positive_int, default=832)
    p.add_argument("--timesteps", type=checks.float_in(0, 1000), nargs="+", default=[900.0, 500.0, 100.0],
                   help="diffusion timesteps in [0, 1000] (noise fraction t / 1000)")
    p.add_argument("--tokens", type=checks.positive_int, default=2048,
                   help="latent tokens sampled per generator for the MMD")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--out", default=None, help="JSON path")
    a = p.parse_args(argv)
    check_clip_shape(a.frames, a.height, a.width, keys=("--frames", "--height", "--width"))
    if a.out:
        checks.output_file("--out", a.out)
    import torch

    from nexus.models.loading import WAN_LAYOUT, check_folder
    check_folder("--small", a.small, WAN_LAYOUT)
    check_folder("--large", a.large, {"transformer": ("transformer/config.json",), "vae": ("vae/config.json",)})
    with torch.no_grad():
        measure(a)


def measure(a) -> None:
    import torch

    from nexus.models.conditioning import pad_tokens
    from nexus.models.latent_space import latent_signature, mmd_rbf
    from nexus.models.loading import load_transformer, load_umt5
    from nexus.models.text import encode_umt5
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    tok, enc = load_umt5(a.small, dt, dev)
    context, _ = pad_tokens(encode_umt5(tok, enc, PROMPTS), 512)
    del enc
    g = torch.Generator().manual_seed(0)
    shape = latent_shape(a.frames, a.height, a.width)
    x0 = torch.randn(len(PROMPTS), *shape, generator=g)
    noise = torch.randn(len(PROMPTS), *shape, generator=g)
    preds = {}
    for name, path in (("small", a.small), ("large", a.large)):
        model = load_transformer(path, dt).to(dev).eval()
        out = []
        for t in a.timesteps:
            s = t / 1000
            zt = ((1 - s) * x0 + s * noise).to(dev, dt)
            v = torch.cat([model(zt[i:i + 1], torch.tensor([t], device=dev), context[i:i + 1].to(dt),
                                 return_dict=False)[0] for i in range(len(PROMPTS))])
            out.append((zt.float() - s * v.float()).cpu())          # predicted clean latents
        preds[name] = torch.cat(out).permute(0, 2, 3, 4, 1).reshape(-1, shape[0])   # tokens x channels
        del model
    idx = torch.randperm(len(preds["small"]), generator=g)[: a.tokens]
    value = mmd_rbf(preds["small"][idx], preds["large"][idx])
    sa, sb = latent_signature(a.small), latent_signature(a.large)
    row = {"small": a.small, "large": a.large, "mmd": value, "same_vae_config": sa == sb,
           "shape": [a.frames, a.height, a.width], "timesteps": a.timesteps, "tokens": len(idx)}
    print(f"MMD(small, large) = {value:.4f}  (same VAE config: {sa == sb})")
    if a.out:
        Path(a.out).write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
