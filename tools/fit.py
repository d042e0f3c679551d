r"""Stage-1 training of Lumos-Nexus: align the connector and the small Wan generator with a frozen VLM.

Examples:
  python tools/fit.py recipe=tiny                                   # tiny random models on a CPU (~30 s)
  python tools/fit.py recipe=omni_wan13b 'data.shards="/data/clips/shard-{000000..000999}.tar"' \
      trainer.devices=8 run.name=first                              # the real recipe (paths.wan, paths.vlm)
  python tools/fit.py -m recipe=tiny model.lr=1e-3,1e-4 run.name=lr # a sweep: runs/tiny/lr/model.lr=0.001, ...

Re-running the same command resumes its run (runs/<recipe>/<run.name>); run.resume=never starts afresh and
moves the old run aside. docs/training.md.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus.cli import ROOT, Tool, hydra_tool  # noqa: E402
from nexus.schema import Fit  # noqa: E402

TOOL = Tool(__doc__, ROOT / "recipes", "fit", Fit, groups=("recipe", "strategy", "logger"), folder_key="run.dir",
            folder_keys=("run.name", "run.dir", "run.root"),
            required={"data.shards": "add the webdataset shards, e.g. "
                                     "'data.shards=\"/data/clips/shard-{000000..000999}.tar\"'"})


def task(cfg):
    from nexus import checks
    checks.fit_inputs_outputs(cfg)       # paths and files, before anything heavy loads
    from nexus.training.launch import fit
    fit(cfg)


if __name__ == "__main__":
    hydra_tool(TOOL, task)
