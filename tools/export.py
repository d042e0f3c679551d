"""Export the trainable weights of a stage-1 checkpoint as safetensors (README, "Export").

  python tools/export.py runs/tiny/default/checkpoints/last.ckpt exports/tiny [--dtype bf16] [--overwrite]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus.export import export_checkpoint  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a .ckpt file or a DeepSpeed checkpoint folder (e.g. checkpoints/last.ckpt)")
    p.add_argument("out", help="output folder (connector/, transformer/ or transformer_lora/, nexus.json)")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    out = export_checkpoint(a.checkpoint, a.out, a.dtype, a.overwrite)
    print(f"exported {a.checkpoint} -> {out}")


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
