"""Memory plan without a GPU: what each GPU would hold for a fit or a sampling config, phase by phase, and
whether it fits (docs/memory-plan.md). The first argument picks the tool whose config is planned; the rest are
that tool's overrides. fit.py, sample.py and watch_eval.py make the same plan before loading any weights on a
GPU, and refuse a config that does not fit with the changes that would.

  python tools/plan.py fit recipe=omni_wan13b trainer.devices=8 plan.gpu=h100-80gb
  python tools/plan.py fit recipe=omni_wan13b trainer.devices=8 data.kind=features plan.gpu=h100-80gb
  python tools/plan.py sample recipe=nexus_wan22_a14b plan.connector=true plan.gpu=h100-80gb
  python tools/plan.py sample recipe=nexus_wan14b sampling.offload=none plan.gpu=h100-80gb plan.json=plan.json

Without weight folders (paths.*) the architectures named by plan.* stand in. plan.gpu takes a GPU name
(h100-80gb, h200-141gb, a100-80gb, a100-40gb, h20-96gb, l40s-48gb) or <N>gib; plan.json=<file> also writes the
plan as JSON. Exit status 1 when the plan does not fit.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus.cli import ROOT, Tool, hydra_tool  # noqa: E402
from nexus.schema import Fit, Sample  # noqa: E402

TOOLS = {"fit": Tool(__doc__, ROOT / "recipes", "fit", Fit, groups=("recipe", "strategy", "logger"),
                     defaults=("data.shards=unused",)),
         "sample": Tool(__doc__, ROOT / "recipes" / "sample", "sample", Sample, groups=("recipe",))}


def main(which: str, out: str | None):
    def task(cfg):
        from nexus.plan.fit import FIT_FIXES, fit_plan, fixes
        from nexus.plan.sample import SAMPLE_FIXES, sample_plan
        make, candidates = (fit_plan, FIT_FIXES) if which == "fit" else (sample_plan, SAMPLE_FIXES)
        plan = make(cfg)
        print(plan.table())
        if plan.fits is False:
            found = fixes(cfg, candidates, make)
            print("these changes fit, by the same plan:\n  " + "\n  ".join(found) if found else
                  "no single change tried fits")
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(plan.to_dict(), indent=2))
            print(f"wrote {out}")
        if plan.fits is False:
            sys.exit(1)
    return task


def split(args: list[str]) -> tuple[str, list[str], str | None]:
    """argv -> (the tool planned, its overrides, the JSON path of plan.json=)."""
    if not args or args[0] not in TOOLS:
        from nexus.errors import UserError
        raise UserError(f"the first argument is the tool to plan: {' | '.join(TOOLS)} (e.g. python tools/plan.py fit "
                        f"recipe=omni_wan13b trainer.devices=8 plan.gpu=h100-80gb)")
    rest = [a for a in args[1:] if not a.startswith("plan.json=")]
    out = next((a.split("=", 1)[1] for a in args[1:] if a.startswith("plan.json=")), None)
    if out is not None:
        from nexus.checks import output_file
        output_file("plan.json", out)          # before the plan is made, not after
    return args[0], rest, out


if __name__ == "__main__":
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(__doc__)
        sys.exit(0)
    try:
        which, rest, out = split(sys.argv[1:])
    except Exception as e:       # noqa: BLE001
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    hydra_tool(TOOLS[which], main(which, out), rest)
