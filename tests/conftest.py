"""Shared fixtures: tiny real models built once per session through the same code the tiny recipe uses."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from nexus.models.tiny import ensure_tiny_models
    return ensure_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def root():
    return ROOT
