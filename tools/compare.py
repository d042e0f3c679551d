"""Sample folders side by side: one grid video per prompt (a labelled column per folder) and one static
index.html with each folder's settings (the differing ones highlighted) and its tools/evaluate.py scores.

Examples:
  python tools/compare.py runs/tiny/samples/small_only runs/tiny/samples/upfb --out runs/compare/tiny
  python tools/compare.py runs/tiny/samples/small_only runs/tiny/samples/upfb --labels small,upfb \\
      --out runs/compare/tiny --overwrite
  python tools/compare.py runs/a runs/b --scores runs/a/eval/scores.json, --frames shortest --out runs/compare/ab

Videos are matched by prompt text across the folders (each folder holds one sampling.seed; the table shows it);
a prompt some folder lacks is shown with a grey "missing" column. Scores come from <folder>/eval/scores.json
when tools/evaluate.py wrote one, or from --scores. Open <out>/index.html in a browser (docs/viewer.md).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

from nexus import checks  # noqa: E402


def comma_list(text: str) -> list[str]:
    return text.split(",")


def parser() -> argparse.ArgumentParser:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="tools/sample.py folders (each with samples.json), one column each")
    p.add_argument("--out", required=True, help="folder for index.html and videos/ (new or empty, else --overwrite)")
    p.add_argument("--labels", type=comma_list, help="comma-separated column names, one per folder (default: the "
                                                     "shortest ends of the paths that tell the folders apart)")
    p.add_argument("--scores", type=comma_list,
                   help="comma-separated tools/evaluate.py scores.json files, one per folder; an empty entry: the "
                        "folder's own eval/scores.json if it has one (the default for every folder)")
    p.add_argument("--frames", choices=checks.choices_of("nexus.evaluation.compare", "FRAMES"), default="longest",
                   metavar="FRAMES", help="%(choices)s: clips of other lengths are padded to the longest (last frame "
                                          "held) or trimmed to the shortest (default: %(default)s)")
    p.add_argument("--height", type=checks.positive_int,
                   help="grid height in pixels (default: the tallest video, at least 256)")
    p.add_argument("--overwrite", action="store_true", help="replace the page and videos of an earlier compare")
    return p


def main(argv=None) -> str:
    a = parser().parse_args(argv)
    from nexus.evaluation.compare import compare, read_runs
    runs = read_runs(a.folders, a.labels, a.scores)     # reads only; compare checks --out before decoding a video
    index = compare(runs, a.out, a.frames, a.height, a.overwrite, log=lambda m: print(m, flush=True))
    print(f"wrote {index}")
    return str(index)


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
