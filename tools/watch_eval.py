"""Evaluate each new checkpoint of a run: `python tools/watch_eval.py recipe=<name> run_dir=<run dir>` (README)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402

from nexus.evaluation.watch import watch  # noqa: E402


@hydra.main(config_path="../recipes/sample", config_name="watch_eval", version_base=None)
def main(cfg) -> None:
    watch(cfg)


if __name__ == "__main__":
    main()
