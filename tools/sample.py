r"""UPFB sampling: the stage-1 small generator hands the sampling over to the frozen large one (paper Sec. 3.3).

Examples:
  python tools/sample.py prompt="a red square moves from left to right"          # tiny generators on a CPU
  python tools/sample.py small.export=runs/tiny/default/checkpoints/last.ckpt prompt="a blue circle bounces" \
      run.name=trained                                                            # with a tiny stage-1 run
  python tools/sample.py recipe=nexus_wan14b small.export=exports/omni prompt_file=data/vrbench trainer.devices=8

Videos go to runs/<recipe>/samples/<run.name> (run.name defaults to the strategy) with prompts.jsonl and
samples.json (what made them); a folder made with other settings is refused (overwrite=true, or another
run.name). docs/sampling.md.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus.cli import ROOT, Tool, hydra_tool  # noqa: E402
from nexus.schema import Sample  # noqa: E402

TOOL = Tool(__doc__, ROOT / "recipes" / "sample", "sample", Sample, groups=("recipe",), folder_key="out_dir",
            folder_keys=("run.name", "out_dir", "run.root"))


def task(cfg):
    from nexus import checks
    checks.sample_inputs_outputs(cfg)       # paths and files, before anything heavy loads
    from nexus.inference.launch import sample
    sample(cfg)


if __name__ == "__main__":
    hydra_tool(TOOL, task)
