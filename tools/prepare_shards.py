"""Pack a folder of videos + a caption manifest into webdataset clip shards (`<key>.mp4` + `<key>.json`).

  python tools/prepare_shards.py --videos /data/raw --manifest /data/raw/captions.csv --out /data/clips \
      --min-frames 81 --workers 8

The manifest is a CSV with a header or JSONL: `path` (relative to --videos), `caption`, optional
`reasoning_prompt` and `fps`. Missing, unreadable, too short or uncaptioned rows are skipped and listed in
out/bad_samples.jsonl; rerunning the same command writes only the shards that do not exist yet.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

from nexus import checks  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", required=True, help="folder the manifest's paths are relative to")
    p.add_argument("--manifest", required=True, help="CSV (with header) or JSONL")
    p.add_argument("--out", required=True, help="output folder for shard-NNNNNN.tar and the reports")
    p.add_argument("--min-frames", type=checks.positive_int, default=1, help="skip videos with fewer decodable frames")
    p.add_argument("--shard-size-mb", type=checks.positive_float, default=1000, help="target shard size")
    p.add_argument("--workers", type=checks.positive_int, default=1, help="processes probing / reading videos")
    p.add_argument("--max-bad-fraction", type=checks.fraction, default=0.05,
                   help="fail (after writing bad_samples.jsonl) when a larger share of rows is bad")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    if Path(a.manifest).is_file():      # a missing one is said by prepare_shards, after --videos
        checks.text_file("--manifest", a.manifest, "give a CSV with a header (path,caption,...) or a JSONL file")
    checks.output_folder("--out", a.out)
    from nexus.data.prepare import TooManyBadSamples, format_summary, prepare_shards
    try:
        summary = prepare_shards(a.videos, a.manifest, a.out, min_frames=a.min_frames,
                                 shard_size_mb=a.shard_size_mb, workers=a.workers,
                                 max_bad_fraction=a.max_bad_fraction, progress=not a.no_progress)
    except TooManyBadSamples as e:
        print(format_summary(e.summary), file=sys.stderr)
        raise
    print(format_summary(summary))
    return summary


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
