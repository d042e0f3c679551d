"""UPFB sampling: `python tools/sample.py recipe=<name> prompt="..." | prompt_file=... [overrides]` (README)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402

from nexus.inference.launch import sample  # noqa: E402


@hydra.main(config_path="../recipes/sample", config_name="sample", version_base=None)
def main(cfg) -> None:
    sample(cfg)


if __name__ == "__main__":
    main()
