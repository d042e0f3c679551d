"""Shared fixtures: tiny real models built once per session through the same code the tiny recipe uses."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _own_wandb_service_per_process():
    """wandb.init in this process exports WANDB_SERVICE; a tool started afterwards would inherit it and share
    this process's W&B service, which may still hold a run id the tool resumes ("run ID ... is in use")."""
    yield
    os.environ.pop("WANDB_SERVICE", None)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from nexus.models.tiny import ensure_tiny_models
    return ensure_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """Eight 9x32x32 synthetic clips in one shard (raw clips + captions)."""
    from nexus.data.shards import write_shards
    from nexus.data.synthetic import synthetic_samples
    out = tmp_path_factory.mktemp("shards")
    write_shards(synthetic_samples(8, 9, 32, 32, seed=1), out, maxcount=8)
    return f"{out}/shard-*.tar"


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu run only where CUDA is available (CI has none): skipped, with the reason shown."""
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
