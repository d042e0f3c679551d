"""Convert released checkpoints to nexus's layout (docs/released-model.md).

  python tools/convert.py omnivideo --bundle /models/OmniVideo11B --out exports/lumos-nexus
      the OmniVideo11B bundle (Hugging Face howellyoung1/OmniVideo11B, as downloaded) -> a nexus export that
      tools/sample.py (small.export=), tools/fit.py (model.init_from=) and the evaluation tools read: connector/,
      transformer/ (diffusers), null.safetensors, extras/, nexus.json (every source file with its sha256). The
      bundle's frozen parts (its Wan VAE / UMT5 / tokenizer and VILA's LLM) stay where they are; nexus.json names them.
  python tools/convert.py tiny-bundle --out runs/.tiny_release
      a tiny random bundle laid out exactly like the release (and a tiny Wan2.1-T2V-14B in the original layout
      beside it, <out>/Wan2.1-T2V-14B), to try the commands on a CPU.

Every key of every file is used or reported: a missing, unexpected or misshapen key is an error naming the file and
the key (the reference loads transformer/model.pt with strict=False, where a wrong prefix fails silently).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402


def main(argv=None) -> None:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True)
    o = sub.add_parser("omnivideo", help="the OmniVideo11B bundle -> a nexus export")
    o.add_argument("--bundle", required=True, help="the downloaded howellyoung1/OmniVideo11B folder")
    o.add_argument("--out", required=True, help="the export folder to write")
    o.add_argument("--overwrite", action="store_true")
    o.add_argument("--no-hash", action="store_true", help="skip the sha256 of the source files in nexus.json")
    o.add_argument("--large", help="the large generator the pipeline folder names (default: <bundle>/Wan2.1-T2V-14B "
                                   "when it exists)")
    t = sub.add_parser("tiny-bundle", help="a tiny random bundle in the release's layout, to try the commands")
    t.add_argument("--out", required=True)
    t.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    checks.output_folder("--out", a.out)
    if a.kind == "omnivideo":
        from nexus.convert.omnivideo import convert_bundle
        out = convert_bundle(a.bundle, a.out, overwrite=a.overwrite, hash_files=not a.no_hash, large=a.large)
        print(f"converted {a.bundle} -> {out}")
    else:
        from nexus.convert.tiny_bundle import write_tiny_bundle
        paths = write_tiny_bundle(a.out, seed=a.seed)
        print("\n".join(f"{k}: {v}" for k, v in paths.items()))


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
