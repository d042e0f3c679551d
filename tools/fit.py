"""Stage-1 training: `python tools/fit.py recipe=<name> [overrides]` (README, "Training")."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402

from nexus.training.launch import fit  # noqa: E402


@hydra.main(config_path="../recipes", config_name="fit", version_base=None)
def main(cfg) -> None:
    fit(cfg)


if __name__ == "__main__":
    main()
