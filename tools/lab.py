"""The shapes lab: the paper's central result at CPU scale, every network trained here (README "Shapes lab").

  python tools/lab.py                        # every stage in order; finished stages are skipped (resumable)
  python tools/lab.py --stage generators     # one stage (the stages before it must have run)
  python tools/lab.py --scale ci --root /tmp/lab-ci    # the reduced lab the tests run (minutes)
  python tools/lab.py --train-vae            # train the VAE here instead of using the shipped weights
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus.lab.run import SCALES, STAGES, Lab  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="runs/lab", help="the lab's folder (default runs/lab)")
    p.add_argument("--scale", choices=sorted(SCALES), default="full", help="full (the README's figures) or ci")
    p.add_argument("--stage", action="append", choices=STAGES, help="run only this stage (repeatable)")
    p.add_argument("--seeds", type=int, help="number of sampling seeds (default: 3 at full scale)")
    p.add_argument("--logger", choices=("csv", "wandb", "none"), default="csv",
                   help="logger of the training runs and of the report (wandb: offline unless WANDB_MODE says)")
    p.add_argument("--train-vae", action="store_true", help="train the VAE (default: the shipped data/lab/vae)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    settings = SCALES[args.scale]
    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError(f"--seeds {args.seeds}: give at least 1")
        settings.seeds = list(range(args.seeds))
    lab = Lab(Path(args.root), settings, args.logger, args.train_vae)
    lab.run(args.stage, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    from nexus.cli import run_tool
    sys.exit(run_tool(main))
