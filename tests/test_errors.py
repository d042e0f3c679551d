"""Bad input stops before anything heavy loads, with a message naming the key and what to change."""
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, compose_fit, tiny_overrides
from nexus.models.loading import LayoutError
from nexus.training.launch import fit


def run_fit(tmp_path, tiny_models, shards, *extra):
    return fit(compose_fit(*tiny_overrides(tmp_path, tiny_models, shards, "trainer.max_steps=1", *extra)))


def test_unknown_recipe_lists_the_available_ones():
    r = subprocess.run([sys.executable, "tools/fit.py", "recipe=omni_wan14b"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr == "error: recipe=omni_wan14b: no such recipe; choose one of lab_generator, lab_stage1, lumos_release_stage1, omni_wan13b, tiny, wan13b_t2v\n"


def test_missing_weight_folder(tmp_path, tiny_models, tiny_shards):
    with pytest.raises(LayoutError, match=r"(?s)paths.wan=/nowhere/wan: no such folder \(set paths.wan=/path/to/folder "
                                          r"or the environment variable NEXUS_WAN_PATH\).*transformer/config.json"):
        run_fit(tmp_path, tiny_models, tiny_shards, "paths.wan=/nowhere/wan")
    with pytest.raises(LayoutError, match="(?s)paths.vlm is not set.*NEXUS_VLM_PATH.*config.json"):
        run_fit(tmp_path, tiny_models, tiny_shards, "paths.vlm=null")


def test_wrongly_laid_out_folder(tmp_path, tiny_models, tiny_shards):
    bad = tmp_path / "wan"
    (bad / "transformer").mkdir(parents=True)
    (bad / "transformer" / "config.json").write_text("{}")
    with pytest.raises(LayoutError, match=f"paths.wan={bad} is not laid out as expected: missing vae/config.json, "
                                          "text_encoder/config.json, tokenizer/tokenizer.json or"):
        run_fit(tmp_path, tiny_models, tiny_shards, f"paths.wan={bad}")


def test_shard_pattern_matching_nothing(tmp_path, tiny_models):
    with pytest.raises(FileNotFoundError, match=r"nothing-\*.tar.*matched no file"):
        run_fit(tmp_path, tiny_models, f"{tmp_path}/nothing-*.tar")


@pytest.mark.parametrize("key,value,message", [
    ("data.num_frames", 8, r"data.num_frames=8 is not 4k\+1 \(the VAE would drop frames\); use 5 or 9"),
    ("data.height", 40, "data.height=40 is not a multiple of 16.*use 32 or 48"),
    ("data.width", 20, "data.width=20 is not a multiple of 16.*use 16 or 32"),
])
def test_clip_shapes_diffusers_would_truncate(tmp_path, tiny_models, tiny_shards, key, value, message):
    with pytest.raises(ValueError, match=message):
        run_fit(tmp_path, tiny_models, tiny_shards, f"{key}={value}")


def test_vlm_hidden_size_mismatch(tmp_path, tiny_models, tiny_shards):
    with pytest.raises(ValueError, match=r"has hidden size 64 but model.connector.vlm_dim=48: set "
                                         r"model.connector.vlm_dim=64"):
        run_fit(tmp_path, tiny_models, tiny_shards, "model.connector.vlm_dim=48")


def test_connector_width_and_context_length(tmp_path, tiny_models, tiny_shards):
    with pytest.raises(ValueError, match="model.connector.out_dim=48 does not match the generator's text_dim=32"):
        run_fit(tmp_path, tiny_models, tiny_shards, "model.connector.out_dim=48")
    with pytest.raises(ValueError, match=r"model.context_len=100 cannot hold 16 connector tokens.*>=532"):
        run_fit(tmp_path, tiny_models, tiny_shards, "model.context_len=100")


def test_errors_come_before_any_run_directory_is_made(tmp_path, tiny_models, tiny_shards):
    with pytest.raises(ValueError):
        run_fit(tmp_path, tiny_models, tiny_shards, "data.num_frames=10")
    assert not (Path(tmp_path) / "runs").exists()
