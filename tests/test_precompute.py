"""Content-hashed precompute (nexus.data.precompute, tools/precompute.py) on the tiny models and clips."""
import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file

from nexus.data.datamodule import DecodedShards, ShardDataModule
from nexus.data.precompute import content_key, encoder_identity, precompute, read_index
from nexus.data.shards import ShardIndex, expand_shards, write_shards
from nexus.data.synthetic import synthetic_samples
from nexus.models.encoders import FrozenEncoders

SHAPE = dict(num_frames=9, height=32, width=32)


def run(shards, out, models, **kw):
    return precompute(shards, out, models["wan"], models["vlm"], **SHAPE, dtype="fp32", devices=1,
                      accelerator="cpu", num_workers=0, progress=False, **kw)


@pytest.fixture(scope="module")
def features(tmp_path_factory, tiny_models, tiny_shards):
    out = tmp_path_factory.mktemp("features")
    summary = run(tiny_shards, out, tiny_models, batch_size=3, maxcount=3)
    return out, summary


@pytest.fixture(scope="module")
def encoders(tiny_models):
    return FrozenEncoders.load(tiny_models["wan"], tiny_models["vlm"])


def test_features_equal_the_encoders_and_keys_are_content_hashes(features, encoders, tiny_models, tiny_shards):
    out, summary = features
    assert summary == {"seen": 8, "skipped": 0, "written": 8, "shards": 3}     # maxcount 3: 3 + 3 + 2
    source = ShardIndex(expand_shards(tiny_shards))
    clips = DecodedShards(source, "raw", 9, 32, 32, start="fixed")
    by_source = {source.keys[i]: i for i in range(len(source))}
    identity = encoder_identity(tiny_models["wan"], tiny_models["vlm"], 9, 32, 32, "fp32")
    feats = ShardIndex(expand_shards(f"{out}/*.tar"))
    assert len(feats) == 8 and len(read_index(out)) == 8
    for i in range(len(feats)):
        s = feats[i]
        meta = json.loads(s["json"])
        j = by_source[meta["source_key"]]
        raw = source[j]
        assert s["__key__"] == content_key(raw["mp4"], meta["caption"], identity)
        assert len(s["__key__"]) == 24
        t = load_safetensors(s["features.safetensors"])
        clip = clips[j]
        torch.testing.assert_close(t["latents"], encoders.latents(clip["video"][None])[0], atol=1e-5, rtol=0)
        p = encoders.prompts([clip["caption"]])
        torch.testing.assert_close(t["umt5"], p["umt5"][0], atol=1e-5, rtol=0)
        torch.testing.assert_close(t["vlm"], p["vlm"][0], atol=1e-5, rtol=0)
    # same inputs, same key; another caption or frame count, another key
    raw = source[0]
    assert content_key(raw["mp4"], "a", identity) == content_key(raw["mp4"], "a", identity)
    assert content_key(raw["mp4"], "a", identity) != content_key(raw["mp4"], "b", identity)
    other = encoder_identity(tiny_models["wan"], tiny_models["vlm"], 5, 32, 32, "fp32")
    assert content_key(raw["mp4"], "a", identity) != content_key(raw["mp4"], "a", other)


def test_null_features_are_written(features, encoders):
    null = load_file(str(features[0] / "null.safetensors"))
    p = encoders.prompts([""])
    torch.testing.assert_close(null["umt5"], p["umt5"][0])
    torch.testing.assert_close(null["vlm"], p["vlm"][0])


def test_rerun_skips_everything_and_new_clips_only_are_encoded(features, tiny_models, tiny_shards, tmp_path):
    out = tmp_path / "features"
    shutil.copytree(features[0], out)
    files = sorted(p.name for p in out.iterdir())
    index = (out / "index.jsonl").read_text()
    assert run(tiny_shards, out, tiny_models) == {"seen": 8, "skipped": 8, "written": 0, "shards": 0}
    assert sorted(p.name for p in out.iterdir()) == files and (out / "index.jsonl").read_text() == index

    write_shards(synthetic_samples(3, 9, 32, 32, seed=7), tmp_path / "more", prefix="more")
    summary = run([tiny_shards, f"{tmp_path}/more/*.tar"], out, tiny_models, batch_size=2)
    assert summary == {"seen": 11, "skipped": 8, "written": 3, "shards": 1}
    assert len(read_index(out)) == 11 and len(expand_shards(f"{out}/*.tar")) == 4
    assert (out / "index.jsonl").read_text().startswith(index)        # append-only


def test_output_trains_as_features(features):
    out = features[0]
    dm = ShardDataModule(shards=f"{out}/*.tar", kind="features", **SHAPE, batch_size=2, num_workers=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["latents"].shape == (2, 16, 3, 4, 4)
    assert batch["umt5"][0].shape[1] == 32 and batch["vlm"][0].shape[1] == 64


def test_cli(root, tiny_models, tmp_path):
    write_shards(synthetic_samples(2, 9, 32, 32, seed=3), tmp_path / "clips")
    args = [sys.executable, "tools/precompute.py", "--shards", str(tmp_path / "clips"), "--out",
            str(tmp_path / "out"), "--wan", tiny_models["wan"], "--vlm", tiny_models["vlm"], "--num-frames", "9",
            "--height", "32", "--width", "32", "--batch-size", "2", "--dtype", "fp32", "--devices", "1",
            "--accelerator", "cpu", "--num-workers", "0"]
    r = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "2 samples seen, 0 skipped (already present), 2 written, 1 shards written" in r.stdout
    assert (tmp_path / "out" / "null.safetensors").is_file()
    assert (tmp_path / "out" / "features-r0-000000.tar").is_file()
