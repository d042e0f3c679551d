"""The command-line tools, run as a user runs them."""
import json
from pathlib import Path
import subprocess
import sys

import pytest

from helpers import ROOT


def run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_bench_train_prints_a_table_and_writes_json(tmp_path, tiny_models):
    out = tmp_path / "bench.json"
    r = run("tools/bench_train.py", "recipe=tiny", f"paths.wan={tiny_models['wan']}", "bench.steps=3",
            "bench.warmup=1", f"bench.out={out}", f"run.root={tmp_path}/runs")
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads(out.read_text())
    assert row["recipe"] == "tiny" and row["steps_timed"] == 3 and row["shape"] == [9, 32, 32]
    assert row["s_per_it"] > 0 and row["samples_per_s"] == 2 / row["s_per_it"]
    assert row["latent_tokens_per_sample"] == 3 * 2 * 2 and row["mfu"] is None and row["model_tflops_per_step"] > 0
    assert "| recipe | device | shape | batch | s/it (median) |" in r.stdout


def test_bench_train_real_width_shallow(tmp_path):
    """bench.preset + bench.layers: Wan2.1-1.3B's width with one block, trained alone (wan13b_t2v) on the CPU; its
    model FLOPs are those of that architecture (nexus.training.flops, 3x forward: all weights train)."""
    from nexus.models.presets import PRESETS
    from nexus.training.flops import wan_forward_flops
    out = tmp_path / "bench.json"
    common = ["recipe=wan13b_t2v", "bench.steps=1", "bench.warmup=1", f"bench.out={out}", f"run.root={tmp_path}/runs",
              "trainer.accelerator=cpu", "trainer.devices=1", "trainer.precision=32-true", "data.num_frames=5",
              "data.height=32", "data.width=32", "strategy=auto"]
    r = run("tools/bench_train.py", *common, "bench.layers=1")
    assert r.returncode != 0 and "bench.layers=1: a depth override needs bench.preset" in r.stderr
    r = run("tools/bench_train.py", *common, "bench.preset=wan2.1-t2v-1.3b", "bench.layers=1")
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads(out.read_text())
    assert row["layers"] == 1 and row["preset"] == "wan2.1-t2v-1.3b"
    arch = dict(PRESETS["wan2.1-t2v-1.3b"], num_layers=1)
    assert row["model_tflops_per_step"] == pytest.approx(3 * wan_forward_flops(arch, 2 * 2 * 2, 512) / 1e12)


def test_export_cli_errors(tmp_path):
    r = run("tools/export.py", str(tmp_path / "missing.ckpt"), str(tmp_path / "out"))
    assert r.returncode != 0
    assert "neither a checkpoint file nor a DeepSpeed checkpoint folder" in r.stderr
    assert not (tmp_path / "out").exists()


def test_make_synthetic_is_deterministic(tmp_path):
    for d in ("a", "b"):
        r = run("tools/make_synthetic.py", "--out", str(tmp_path / d), "--n", "3", "--frames", "5", "--height", "32",
                "--width", "32", "--seed", "7")
        assert r.returncode == 0, r.stderr
    a, b = (tmp_path / "a" / "shard-000000.tar").read_bytes(), (tmp_path / "b" / "shard-000000.tar").read_bytes()
    assert a == b and len(a) > 0


def test_plot_schedule_writes_png_and_numbers(tmp_path):
    out = tmp_path / "s.png"
    r = run("tools/plot_schedule.py", "--gamma-w", "0.2", "0.5", "--steps", "20", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads(out.with_suffix(".json").read_text())
    assert len(rows["0.2"]) == 20 and rows["0.2"][0]["w"] == 1.0 and rows["0.2"][0]["sigma"] == 0.7
    assert "gamma_w=0.2: w < 0.5 from step" in r.stdout
    bad = run("tools/plot_schedule.py", "--gamma-w", "0", "--out", str(tmp_path / "x.png"))
    assert bad.returncode != 0 and "gamma_w=0.0 must be > 0" in bad.stderr


def test_bench_sample_and_latent_mmd(tmp_path, tiny_models):
    root = str(Path(tiny_models["wan"]).parent)
    out = tmp_path / "bench.json"
    r = run("tools/bench_sample.py", "--tiny-models", root, "--steps", "2", "--repeats", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads(out.read_text())
    assert set(row["s_per_step"]) == {"large_only", "upfb", "small_only"} and row["real_latent"] == [16, 21, 60, 104]
    assert row["upfb_over_large_only"] == row["s_per_step"]["upfb"] / row["s_per_step"]["large_only"]
    r = run("tools/latent_mmd.py", "--small", tiny_models["wan"], "--large", tiny_models["wan"], "--frames", "5",
            "--height", "32", "--width", "32", "--tokens", "64", "--out", str(tmp_path / "mmd.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "mmd.json").read_text())["mmd"] == 0.0     # a generator against itself
