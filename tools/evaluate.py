r"""VBench-style scores of a folder of mp4 videos, written as <videos>/eval/scores.{json,md}.

Examples:
  python tools/evaluate.py recipe=tiny videos=runs/tiny/samples/upfb              # tiny random networks, any CPU
  python tools/evaluate.py videos=runs/nexus_wan14b/samples/upfb metrics.networks.clip=/models/clip-vit-base-patch32

Prompts come from manifest=, else the folder's prompts.jsonl (tools/sample.py writes it), else the file names.
docs/evaluation.md.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus.cli import ROOT, Tool, hydra_tool  # noqa: E402
from nexus.schema import Evaluate  # noqa: E402

TOOL = Tool(__doc__, ROOT / "recipes" / "evaluate", "evaluate", Evaluate, groups=("recipe",), folder_key="out",
            folder_keys=("out",),
            required={"videos": "add videos=<the folder of mp4 files to score>, e.g. videos=runs/tiny/samples/upfb"})


def task(cfg):
    from nexus import checks
    checks.evaluate_inputs_outputs(cfg)       # paths and files, before anything heavy loads
    from nexus.evaluation.run import evaluate_folder
    evaluate_folder(cfg)


if __name__ == "__main__":
    hydra_tool(TOOL, task)
