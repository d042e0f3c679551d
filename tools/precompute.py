"""Run the frozen encoders once over raw clip shards and write feature shards for `data.kind=features`.

  python tools/precompute.py --shards '/data/clips/shard-{000000..000999}.tar' --out /data/features \
      --wan $NEXUS_WAN_PATH --vlm $NEXUS_VLM_PATH --num-frames 81 --height 480 --width 832 \
      --dtype bf16 --devices 8

Samples are keyed by a content hash of (mp4, caption, encoders + settings); those already listed in
out/index.jsonl are skipped, so rerunning (or adding shards) encodes only what is new. Train with
data.kind=features data.shards='/data/features/*.tar' model.null_features=/data/features/null.safetensors.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

from nexus import checks  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", required=True, help="raw clip shards: a directory, glob or brace pattern")
    p.add_argument("--out", required=True, help="output folder: features-r*.tar, index.jsonl, null.safetensors")
    p.add_argument("--wan", required=True, help="Wan diffusers folder (vae/, text_encoder/, tokenizer/)")
    p.add_argument("--vlm", required=True, help="Qwen-VL folder (config.json + tokenizer)")
    p.add_argument("--num-frames", type=checks.positive_int, default=81)
    p.add_argument("--height", type=checks.positive_int, default=480)
    p.add_argument("--width", type=checks.positive_int, default=832)
    p.add_argument("--batch-size", type=checks.positive_int, default=1)
    p.add_argument("--dtype", choices=checks.choices_of("nexus.models.loading", "DTYPES"), default="bf16",
                   metavar="DTYPE", help="%(choices)s")
    p.add_argument("--devices", type=checks.devices, default="auto",
                   help="number of devices, -1 (all), indices such as 0,1, or 'auto'")
    p.add_argument("--accelerator", default="auto", help="auto, gpu, cpu")
    p.add_argument("--num-workers", type=checks.nonnegative_int, default=2, help="decoding workers per device")
    p.add_argument("--maxcount", type=checks.positive_int, default=256, help="samples per output shard")
    p.add_argument("--decoder", choices=checks.choices_of("nexus.data.decode", "DECODERS"), default="torchcodec",
                   metavar="DECODER", help="the clip decoder, as data.decoder: %(choices)s")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    checks.output_folder("--out", a.out)
    from lightning.pytorch.utilities import rank_zero_only
    from nexus.data.precompute import format_summary, precompute
    summary = precompute(a.shards, a.out, a.wan, a.vlm, a.num_frames, a.height, a.width, a.batch_size,
                         a.dtype, devices=a.devices, accelerator=a.accelerator, num_workers=a.num_workers,
                         maxcount=a.maxcount, progress=not a.no_progress, decoder=a.decoder)
    if rank_zero_only.rank == 0:       # on several devices every rank runs this script: print once
        print(format_summary(summary))
    return summary


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
