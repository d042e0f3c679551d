"""Compose the real Hydra recipes for tests, with tiny, fast overrides."""
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]


def compose_fit(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "recipes"), version_base=None):
        return compose("fit", overrides=list(overrides))


def tiny_overrides(tmp_path, tiny_models, shards, *extra: str) -> list[str]:
    """The tiny recipe pointed at a test's folders: ready-built tiny models, test shards, CSV logs, no bar."""
    return [f"run.root={tmp_path}/runs", f"paths.wan={tiny_models['wan']}", f"paths.vlm={tiny_models['vlm']}",
            "paths.tiny_models=null", f"data.shards={shards}", "logger=csv", "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=1", "trainer.enable_model_summary=false", *extra]
