"""VBench-style scores of a folder of videos: `python tools/evaluate.py recipe=vbench|tiny videos=<folder>` (README)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402

from nexus.evaluation.run import evaluate_folder  # noqa: E402


@hydra.main(config_path="../recipes/evaluate", config_name="evaluate", version_base=None)
def main(cfg) -> None:
    evaluate_folder(cfg)


if __name__ == "__main__":
    main()
