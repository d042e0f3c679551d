"""The shapes lab: the paper's central result at CPU scale, every network trained here (docs/lab.md).

  python tools/lab.py                        # every stage in order; finished stages are skipped (resumable)
  python tools/lab.py --stage generators     # one stage (the stages before it must have run)
  python tools/lab.py --scale ci --root /tmp/lab-ci    # the reduced lab the tests run (minutes)
  python tools/lab.py --train-vae            # train the VAE here instead of using the shipped weights
  OMP_NUM_THREADS=1 python tools/lab.py --train-vae --stage vae && python tools/lab.py --ship-vae
                                             # how data/lab/vae was made (about 40 min)
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402
from nexus.lab.run import SCALES, STAGES, Lab  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="runs/lab", help="the lab's folder (default runs/lab)")
    p.add_argument("--scale", choices=sorted(SCALES), default="full", help="full (the figures in docs/lab.md) or ci")
    p.add_argument("--stage", action="append", choices=STAGES, help="run only this stage (repeatable)")
    p.add_argument("--seeds", type=checks.positive_int, help="number of sampling seeds (default: 3 at full scale)")
    p.add_argument("--logger", choices=("csv", "wandb", "none"), default="csv",
                   help="logger of the training runs and of the report (wandb: offline unless WANDB_MODE says)")
    p.add_argument("--train-vae", action="store_true", help="train the VAE (default: the shipped data/lab/vae)")
    p.add_argument("--ship-vae", action="store_true",
                   help="copy the VAE this lab trained (<root>/parts/vae) into data/lab/vae, with checksums")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    checks.output_folder("--root", args.root)
    settings = SCALES[args.scale]
    if args.seeds is not None:
        settings.seeds = list(range(args.seeds))
    lab = Lab(Path(args.root), settings, args.logger, args.train_vae)
    if args.ship_vae:
        from nexus.lab.run import ship_vae
        if (lab.done("vae") or {}).get("info", {}).get("source") != "trained":
            raise ValueError(f"--ship-vae: {args.root} holds no VAE trained here; run tools/lab.py --train-vae "
                             f"--stage vae --root {args.root} first")
        print(f"shipped {ship_vae(lab.path('parts', 'vae'), 'OMP_NUM_THREADS=1 python tools/lab.py --train-vae --stage vae')}")
        return 0
    lab.run(args.stage, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    from nexus.cli import run_tool
    sys.exit(run_tool(main))
