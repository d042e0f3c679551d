"""VR-Bench: judge videos with a local VLM and score them; compare runs (docs/evaluation.md, "VR-Bench").

  # judge a folder of <case id>.mp4 (e.g. tools/sample.py prompt_file=data/vrbench output), reference protocol
  python tools/vrbench.py evaluate --videos runs/nexus/samples/upfb --judge /models/Qwen3-VL-30B-A3B-Instruct \\
      --out runs/vrbench/upfb [--protocol reference|lenient] [--mode generate|prob] [--only DRF,CAC_003] [--limit 10]
  # generate the videos first through the inference module (recipes/sample overrides), into <out>/videos
  python tools/vrbench.py evaluate --generate "recipe=nexus_wan14b small.export=exports/omni bridge.strategy=upfb" \\
      --judge /models/Qwen3-VL-30B-A3B-Instruct --out runs/vrbench/upfb
  # one table (Markdown + CSV) and a radar chart over several runs
  python tools/vrbench.py report runs/vrbench/small_only runs/vrbench/large_only runs/vrbench/direct_add \\
      runs/vrbench/upfb --out runs/vrbench/report
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402
from nexus.evaluation.vrbench.protocol import PROTOCOLS  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate", help="judge the videos of the VR-Bench cases and write scores")
    e.add_argument("--cases", default=str(Path(__file__).resolve().parents[1] / "data" / "vrbench"),
                   help="VR-Bench .json file or folder (default: the cases shipped in data/vrbench)")
    e.add_argument("--videos", help="folder of <case id>.mp4 (default with --generate: <out>/videos)")
    e.add_argument("--generate", metavar="OVERRIDES", help="sample the videos first: tools/sample.py overrides")
    e.add_argument("--judge", default=os.environ.get("NEXUS_JUDGE_PATH"),
                   help="local VLM folder (default $NEXUS_JUDGE_PATH), e.g. Qwen3-VL-30B-A3B-Instruct; 'tiny': the "
                        "tiny random Qwen2.5-VL under runs/.tiny_models (smoke tests)")
    e.add_argument("--out", required=True, help="run folder: scores.json, cases.csv, vrbench_table.md, judge_cache/")
    e.add_argument("--protocol", choices=PROTOCOLS, default="reference",
                   help="how replies are read: reference (the paper's evaluators, rule for rule; default) or lenient "
                        "(reads malformed replies too; counts the replies it reads differently)")
    e.add_argument("--round-cases", action=argparse.BooleanOptionalAction, default=None,
                   help="round case scores to 4 digits as the reference does (default: with --protocol reference)")
    e.add_argument("--mode", choices=checks.choices_of("nexus.evaluation.vrbench.judge", "MODES"), default="generate",
                   metavar="MODE", help="%(choices)s; generate: one JSON reply per case (the reference); prob: P(yes) per question (not the "
                        "reference)")
    e.add_argument("--frames", type=checks.positive_int, default=16, help="frames given to the judge (reference: 16)")
    e.add_argument("--max-new-tokens", type=checks.positive_int, default=1024,
                   help="reply length limit (reference: 1024)")
    e.add_argument("--dtype", choices=checks.choices_of("nexus.models.loading", "DTYPES"), metavar="DTYPE",
                   help="%(choices)s; default bf16 on CUDA (the reference), fp32 on CPU")
    e.add_argument("--device", help="default cuda when available, else cpu")
    e.add_argument("--only", help="comma-separated case ids and/or dimensions, e.g. DRF,CAC_003")
    e.add_argument("--limit", type=checks.positive_int, help="the first N selected cases")
    e.add_argument("--cache", help="judge cache folder (default <out>/judge_cache); share it across runs")
    e.add_argument("--name", help="run name in tables (default: the out folder's name)")
    r = sub.add_parser("report", help="Markdown/CSV table and radar chart over several runs")
    r.add_argument("runs", nargs="+", help="run folders (or their scores.json)")
    r.add_argument("--names", help="comma-separated names, one per run (default: each run's name)")
    r.add_argument("--out", required=True)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "report":
        from nexus.evaluation.vrbench.report import check_scores_input, report
        for run in args.runs:
            check_scores_input("runs", run)
        checks.output_folder("--out", args.out)
        for path in report(args.runs, args.out, args.names.split(",") if args.names else None):
            print(f"wrote {path}")
        return 0
    return evaluate(args)


def check_paths(args) -> None:
    """What evaluate reads and writes, before torch or the judge loads."""
    if not args.videos and args.generate is None:
        raise ValueError("give --videos <folder of <case id>.mp4> or --generate '<tools/sample.py overrides>'")
    if args.videos and not Path(args.videos).is_dir():
        raise FileNotFoundError(f"--videos {args.videos}: no such folder (one <case id>.mp4 per case)")
    if Path(args.cases).is_file():      # a folder's files are each read (a bad one is reported and skipped)
        checks.json_file("--cases", args.cases, "give a VR-Bench .json file or a folder of them (e.g. data/vrbench)")
    checks.output_folder("--out", args.out)
    if args.cache:
        checks.output_folder("--cache", args.cache)
    checks.device("--device", args.device, auto=False)


def evaluate(args) -> int:
    check_paths(args)
    import torch

    from nexus.evaluation.vrbench.report import row
    from nexus.evaluation.vrbench.run import evaluate as run
    judge = args.judge
    if judge == "tiny":
        from nexus.models.tiny import ensure_tiny_models
        judge = ensure_tiny_models("runs/.tiny_models")["vlm"]
    cuda = torch.cuda.is_available()
    result = run(args.cases, args.videos or Path(args.out) / "videos", judge, args.out, mode=args.mode,
                 frames=args.frames, max_new_tokens=args.max_new_tokens,
                 dtype=args.dtype or ("bf16" if cuda else "fp32"),
                 device=args.device or ("cuda" if cuda else "cpu"), only=args.only, limit=args.limit,
                 cache=args.cache, generate=args.generate, name=args.name, protocol=args.protocol,
                 round_cases=args.round_cases)
    for problem in result["problems"][:20]:
        print(f"skipped: {problem}", file=sys.stderr)
    if len(result["problems"]) > 20:
        print(f"skipped: ... {len(result['problems']) - 20} more (all listed in {args.out}/scores.json)", file=sys.stderr)
    summary, why = row(result)
    for change in result["deviations"]:
        print(f"not the reference protocol: {change}", file=sys.stderr)
    overall = "n/a" if summary["Overall"] is None else f"{summary['Overall']:.2f}"
    print(f"protocol {summary['protocol']}, judge {result['judge']}\n"
          f"{result['judged']} judged, {result['cached']} from cache, {len(result['problems'])} problems; "
          f"{summary['cases']} cases scored of {result['case_set']}, {summary['dropped']} dropped, "
          f"{summary['unparsed']} unparsed answers"
          + (f", {summary['nonreference']} replies read differently from the reference" if args.protocol == "lenient"
             else "")
          + f"\noverall {overall}" + (f" (incomplete: {why['Overall']})" if "Overall" in why else
                                       "" if result["complete"] else " (incomplete: not every case judged)")
          + f" -> {args.out}/scores.json")
    return 0


if __name__ == "__main__":
    from nexus.cli import run_tool
    sys.exit(run_tool(main))
