"""Kendall's tau between two sets of VR-Bench scores, at the case, dimension and run level (paper App. D.2, D.6).

  # two judges on the same runs (run folders named alike, e.g. runs/vrbench/{qwen,gpt}/{upfb,large_only})
  python tools/rank_agreement.py --a runs/vrbench/qwen/upfb runs/vrbench/qwen/large_only \\
                                 --b runs/vrbench/gpt/upfb runs/vrbench/gpt/large_only
  # a judge against human ratings: a CSV with columns case (or id), score, and optionally run, dimension
  python tools/rank_agreement.py --a runs/vrbench/qwen/upfb --b human.csv [--json agreement.json]
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402


def main(argv=None) -> int:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", nargs="+", required=True, help="scores.json / run folders / score CSVs")
    p.add_argument("--b", nargs="+", required=True, help="the same for the other judge or the humans")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    from nexus.evaluation.vrbench.report import check_scores_input
    for flag, paths in (("--a", args.a), ("--b", args.b)):
        for path in paths:
            check_scores_input(flag, path)
    if args.json:
        checks.output_file("--json", args.json)
    from nexus.data.video import atomic_write
    from nexus.evaluation.vrbench.agreement import agreement
    result = agreement(args.a, args.b)
    print("| level | n | Kendall tau-b | p |\n|---|---|---|---|")
    for level, r in result.items():
        tau, pv = ("-" if r[k] is None else f"{r[k]:.3f}" for k in ("tau", "p"))
        print(f"| {level} | {r['n']} | {tau} | {pv} |")
    if args.json:
        with atomic_write(args.json) as f:
            f.write(json.dumps(result, indent=1).encode())
    return 0


if __name__ == "__main__":
    from nexus.cli import run_tool
    sys.exit(run_tool(main))
