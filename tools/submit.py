"""Submit a stage-1 training job (or the checkpoint watcher) to SLURM (docs/slurm.md).

  python tools/submit.py recipe=omni_wan13b nodes=4 gpus_per_node=8 time=48:00:00 partition=gpu [--dry-run]
  python tools/submit.py job=watch_eval recipe=omni_wan13b run.name=first partition=gpu

Submit's own keys are in recipes/submit.yaml; every other key=value goes to tools/fit.py unchanged.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus.slurm.submit import submit  # noqa: E402


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__ + "\n" + (Path(__file__).resolve().parents[1] / "recipes" / "submit.yaml").read_text())
        return
    job, text = submit(argv)
    if job is None:
        print(text, end="")
    else:
        print(f"submitted job {job}")


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
