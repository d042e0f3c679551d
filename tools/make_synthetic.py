"""Write synthetic caption-video shards (coloured shapes moving on plain backgrounds) in webdataset format.

  python tools/make_synthetic.py --out data/tiny/clips --n 16 --frames 9 --height 32 --width 32 --seed 0
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

from nexus import checks  # noqa: E402


def main(argv: list[str] | None = None) -> list[str]:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder for the shards")
    p.add_argument("--n", type=checks.positive_int, default=16, help="number of clips")
    p.add_argument("--frames", type=checks.positive_int, default=9)
    p.add_argument("--height", type=checks.positive_int, default=32, help="even (yuv420p)")
    p.add_argument("--width", type=checks.positive_int, default=32, help="even (yuv420p)")
    p.add_argument("--fps", type=checks.positive_int, default=16)
    p.add_argument("--seed", type=checks.nonnegative_int, default=0)
    p.add_argument("--per-shard", type=checks.positive_int, default=64, help="clips per shard")
    p.add_argument("--prefix", default="shard")
    a = p.parse_args(argv)
    for flag, v in (("--height", a.height), ("--width", a.width)):
        if v % 2:
            raise checks.UserError(f"{flag} {v}: must be even (yuv420p video); use {v - 1 or 2} or {v + 1}")
    checks.output_folder("--out", a.out)
    from nexus.data.shards import write_shards
    from nexus.data.synthetic import synthetic_samples
    samples = synthetic_samples(a.n, a.frames, a.height, a.width, fps=a.fps, seed=a.seed)
    paths = write_shards(samples, a.out, prefix=a.prefix, maxcount=a.per_shard)
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
