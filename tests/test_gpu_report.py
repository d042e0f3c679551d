"""The GPU report's parts that run anywhere: the raw-data benchmarks on tiny models, the report's table, a failed
measurement reported as such. (The report itself needs a GPU for its figures; `--tiny` was run by hand.)"""
import importlib.util
import json
import sys

from helpers import ROOT


def tool(name: str):
    spec = importlib.util.spec_from_file_location(f"t_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_raw_mode_training_runs_the_encoders_in_the_step(tmp_path, tiny_models, capsys):
    out = tmp_path / "raw.json"
    bench = tool("bench_train")
    from nexus.cli import hydra_tool
    hydra_tool(bench.TOOL, bench.main, ["bench.kind=raw", "recipe=tiny", f"paths.wan={tiny_models['wan']}",
                                        f"paths.vlm={tiny_models['vlm']}", "bench.steps=2", "bench.warmup=1",
                                        f"bench.out={out}", f"run.root={tmp_path}/runs"])
    row = json.loads(out.read_text())
    assert row["kind"] == "raw" and row["steps_timed"] == 2 and row["s_per_it"] > 0
    assert row["hfu"] is None and row["hardware_tflops_per_step"] >= row["model_tflops_per_step"]
    assert row["planned_allocated_gb"] > 0


def test_encoder_costs_per_sample(tmp_path, tiny_models):
    out = tmp_path / "encode.json"
    tool("bench_encode").main(["--tiny-models", str(ROOT / "runs" / ".tiny_models"), "--repeats", "1",
                               "--out", str(out)])
    row = json.loads(out.read_text())
    assert set(row["s"]) == {"vae_encode", "umt5", "vlm"} and all(v > 0 for v in row["s"].values())
    assert abs(row["s_per_sample"] - sum(row["s"].values())) < 1e-9


def test_report_table_and_a_failed_measurement(tmp_path):
    report = tool("gpu_report")
    failed = report.run("broken", [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
                        tmp_path / "none.json", 60)
    assert failed["error"] == ["boom"]
    ok = report.run("ok", [sys.executable, "-c", "print('{\"x\": 1}')"], tmp_path / "none.json", 60)
    assert ok["x"] == 1
    sampling = {"attention": "default (SDPA)", "compile": False, "small_device": "cuda:0",
                "s_per_step": {"large_only": 2.0, "upfb": 2.3, "small_only": 0.3}, "upfb_over_large_only": 1.15,
                "peak_allocated_gib": {"upfb": 40.123}, "planned_allocated_gib": 38.5}
    training = {"name": "train-default", "s_per_it": 2.25, "samples_per_s": 0.444, "mfu": 0.4, "hfu": 0.5,
                "peak_memory_gb": 27.0, "planned_allocated_gb": 26.8}
    md = report.markdown({"device": "NVIDIA H100", "when": "now", "versions": {"torch": "t", "diffusers": "d"},
                          "shape": "81x480x832", "repeats": 3, "context": {"outside_allocator_gib": 0.6},
                          "sampling": [sampling, failed], "training": [training],
                          "encoders": {"s": {"vae_encode": 1.5, "umt5": 0.1, "vlm": 0.2}, "s_per_sample": 1.8,
                                       "peak_gib": {"vae_encode": 9.0}}})
    assert "| default (SDPA) | False | cuda:0 | 2.000 | 2.300 | 1.15x | 40.12 | 38.50 |" in md
    assert "| broken | | | error: ['boom'] |" in md
    assert "| train-default | 2.250 | 0.444 | 40.0% | 50.0% | 27.00 | 26.80 |" in md
    assert "| 1.500 | 0.100 | 0.200 | 1.800 | 9.0 |" in md
