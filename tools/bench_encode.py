"""The frozen encoders' cost per training sample in raw-data training (data.kind=raw), where they run inside
every step: the VAE encoding one clip, UMT5 and the VLM reading one prompt (plus the empty prompt of CFG).
Prints a table and writes JSON; on a GPU also the peak memory of each.

  python tools/bench_encode.py                                   # CPU: the tiny models' encoders, 9x32x32
  python tools/bench_encode.py --preset --frames 81 --height 480 --width 832   # GPU: Wan2.1's VAE, UMT5-XXL
                                                   # and Qwen2.5-VL-7B architectures, random weights, bf16
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402
from nexus.benchmarks import clip_parser, peak_gib, reset_peak, timed  # noqa: E402
from nexus.shapes import check_clip_shape  # noqa: E402

PROMPT = "A red ball bounces across a wooden floor while a cat watches from a sunny windowsill."


def random_encoders(dev, dtype, tokenizers: dict):
    """Wan2.1's VAE, UMT5-XXL and Qwen2.5-VL-7B built from their configs on the device, random weights (the
    tiny models' tokenizers give ids, all within the real vocabularies)."""
    import torch
    from diffusers import AutoencoderKLWan
    from transformers import AutoModelForImageTextToText, UMT5Config, UMT5EncoderModel
    from nexus.plan.sizes import UMT5_XXL, vlm_config
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(dev):
            vae = AutoencoderKLWan().eval()
            umt5 = UMT5EncoderModel(UMT5Config(**UMT5_XXL)).eval()
            vlm = AutoModelForImageTextToText.from_config(vlm_config(None, "qwen2.5-vl-7b")[0]).eval()
    finally:
        torch.set_default_dtype(old)
    return vae, (tokenizers["umt5"], umt5), (tokenizers["vlm"], vlm)


def measured(fn, dev, repeats: int) -> tuple[float, float | None]:
    """(median seconds, peak GiB on CUDA) of fn(), without autograd."""
    import torch
    reset_peak(dev)
    with torch.no_grad():
        return timed(fn, dev, repeats), peak_gib(dev)


def main(argv=None) -> None:
    p = clip_parser(__doc__, "real encoder architectures, random weights (GPU)")
    p.add_argument("--repeats", type=checks.positive_int, default=3)
    p.add_argument("--out", default="bench/encode.json")
    a = p.parse_args(argv)
    check_clip_shape(a.frames, a.height, a.width, keys=("--frames", "--height", "--width"))
    out = checks.output_file("--out", a.out)
    import torch

    from nexus.models import codec, loading, text, understanding
    from nexus.models.tiny import ensure_tiny_models
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    tiny = ensure_tiny_models(a.tiny_models)
    if a.preset:
        from transformers import AutoTokenizer
        toks = {"umt5": AutoTokenizer.from_pretrained(Path(tiny["wan"]) / "tokenizer"),
                "vlm": AutoTokenizer.from_pretrained(tiny["vlm"])}
        vae, (ut, umt5), (vt, vlm) = random_encoders(dev, dt, toks)
    else:
        vae = loading.load_vae(tiny["wan"], dt, dev)
        ut, umt5 = loading.load_umt5(tiny["wan"], dt, dev)
        vt, vlm = loading.load_vlm(tiny["vlm"], dt, dev)
    clip = (torch.rand(1, 3, a.frames, a.height, a.width, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(dev)
    rows = {"vae_encode": measured(lambda: codec.encode_video(vae, clip), dev, a.repeats),
            "umt5": measured(lambda: text.encode_umt5(ut, umt5, [PROMPT, ""]), dev, a.repeats),
            "vlm": measured(lambda: understanding.vlm_hidden_states(vt, vlm, [PROMPT, ""]), dev, a.repeats)}
    row = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "preset": a.preset,
           "shape": [a.frames, a.height, a.width], "repeats": a.repeats,
           "s": {k: v[0] for k, v in rows.items()}, "peak_gib": {k: v[1] for k, v in rows.items()},
           "s_per_sample": sum(v[0] for v in rows.values())}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2))
    print("\n| device | shape | VAE encode s | UMT5 s | VLM s | per sample s |\n|" + "---|" * 6)
    print(f"| {row['device']} | {'x'.join(map(str, row['shape']))} | {row['s']['vae_encode']:.4f} | "
          f"{row['s']['umt5']:.4f} | {row['s']['vlm']:.4f} | {row['s_per_sample']:.4f} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
