r"""Evaluate each new checkpoint of a stage-1 run as it appears: export, sample (UPFB by default), score, log.

Examples:
  python tools/watch_eval.py recipe=nexus_wan14b run_dir=runs/omni_wan13b/first        # polls every 60 s
  python tools/watch_eval.py recipe=tiny run_dir=runs/tiny/default once=true logger=csv # what is there now

Results: <run_dir>/eval_watch/step<N>/scores.{json,md}, logged at step N; done.json makes a restart skip what is
done. docs/evaluation.md, "As a separate job".
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus.cli import ROOT, Tool, hydra_tool  # noqa: E402
from nexus.schema import WatchEval  # noqa: E402

TOOL = Tool(__doc__, ROOT / "recipes" / "sample", "watch_eval", WatchEval, groups=("recipe",),
            required={"run_dir": "add run_dir=<the stage-1 run to watch>, e.g. run_dir=runs/tiny/default"})


def task(cfg):
    from nexus import checks
    checks.watch_inputs_outputs(cfg)       # paths and files, before anything heavy loads
    from nexus.evaluation.watch import watch
    watch(cfg)


if __name__ == "__main__":
    hydra_tool(TOOL, task)
