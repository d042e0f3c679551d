"""One command for a GPU machine: the benchmarks at real shapes (random weights, no download) and the measured
memory peaks next to the memory plan's, written as one JSON + one Markdown report. Each measurement runs in its
own process (its own memory peak); a failed one is reported with its error, the others still run.

  python tools/gpu_report.py                          # GPU: Wan2.1 1.3B + 14B architectures, 81x480x832
  python tools/gpu_report.py --out bench/gpu_report --steps 4 --repeats 3
  python tools/gpu_report.py --tiny                   # any machine: the same path on tiny models (a smoke test)

What it measures: (1) the CUDA context and library memory outside torch's allocator (the plan's reserve);
(2) UPFB sampling s/step and peak memory per attention backend (default SDPA, cuDNN, flash-attn when installed),
with regional compilation, and with the small generator on a second GPU when there is one; (3) a stage-1 training step of omni_wan13b on one GPU (features, Wan2.1-1.3B +
full connector): s/it, MFU, HFU and peak memory, and with bench.kind=raw when NEXUS_WAN_PATH and NEXUS_VLM_PATH
hold the encoders' weights; (4) the raw-data encoders' cost per sample (tools/bench_encode.py); (5) each peak
against the plan's allocated bytes.
"""
import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONTEXT = """import json, torch
torch.zeros(1, device="cuda"); torch.backends.cuda.matmul  # CUDA context + allocator up
torch.ones(1024, 1024, device="cuda") @ torch.ones(1024, 1024, device="cuda")  # cuBLAS workspace
free, total = torch.cuda.mem_get_info()
print(json.dumps({"device": torch.cuda.get_device_name(), "total_gib": total / 2**30,
                  "outside_allocator_gib": (total - free - torch.cuda.memory_reserved()) / 2**30}))"""


def run(name: str, cmd: list[str], out: Path, timeout: int) -> dict:
    """Run one measurement; -> its JSON (the file it wrote, or its stdout) or the error it ended with."""
    t0 = time.time()
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {timeout} s"}
    row = {"name": name, "command": " ".join(cmd[1:]), "wall_s": time.time() - t0}
    if r.returncode != 0:
        return row | {"error": (r.stderr or r.stdout).strip().splitlines()[-1:] or ["exit %d" % r.returncode]}
    if out.is_file():
        return row | json.loads(out.read_text())
    return row | json.loads(r.stdout.strip().splitlines()[-1])


def markdown(report: dict) -> str:
    lines = [f"# GPU report ({report['device']}, {report['when']})", "",
             f"torch {report['versions']['torch']}, diffusers {report['versions']['diffusers']}; "
             f"shape {report['shape']}; medians of {report['repeats']} repeats", ""]
    ctx = report.get("context", {})
    lines += [f"Outside torch's allocator (CUDA context, cuBLAS): {ctx.get('outside_allocator_gib', 'n/a')} GiB "
              f"(the plan reserves 2 GiB)" if "error" not in ctx else f"context: {ctx['error']}", "",
              "## Sampling (UPFB, Wan2.1 1.3B + 14B architectures, random weights)", "",
              "| attention | compile | small on | large_only s/step | upfb s/step | upfb / large_only | peak GiB (upfb) "
              "| planned GiB |", "|---|---|---|---|---|---|---|---|"]
    for r in report["sampling"]:
        if "error" in r:
            lines.append(f"| {r['name']} | | | error: {r['error']} | | | | |")
            continue
        s, peak = r["s_per_step"], (r.get("peak_allocated_gib") or {}).get("upfb")
        lines.append(f"| {r['attention']} | {r['compile']} | {r['small_device']} | {s['large_only']:.3f} | "
                     f"{s['upfb']:.3f} | "
                     f"{r['upfb_over_large_only']:.2f}x | {peak if peak is None else round(peak, 2)} | "
                     f"{r['planned_allocated_gib']:.2f} |")
    lines += ["", "## Training (omni_wan13b on one GPU, features, bf16-mixed)", "",
              "| run | s/it | samples/s | MFU | HFU | peak GB (allocated) | planned GB |", "|---|---|---|---|---|---|---|"]
    for r in report["training"]:
        if "error" in r:
            lines.append(f"| {r['name']} | error: {r['error']} | | | | | |")
            continue
        mfu, hfu = ("n/a" if r.get(k) is None else f"{100 * r[k]:.1f}%" for k in ("mfu", "hfu"))
        lines.append(f"| {r['name']} | {r['s_per_it']:.3f} | {r['samples_per_s']:.3f} | {mfu} | {hfu} | "
                     f"{r['peak_memory_gb']:.2f} | {r['planned_allocated_gb']:.2f} |")
    enc = report.get("encoders", {})
    lines += ["", "## Raw-data encoders per sample (Wan2.1 VAE, UMT5-XXL, Qwen2.5-VL-7B; random weights)", ""]
    if "error" in enc:
        lines.append(f"error: {enc['error']}")
    elif enc:
        lines += ["| VAE encode s | UMT5 s | VLM s | per sample s | peak GiB (VAE) |", "|---|---|---|---|---|",
                  f"| {enc['s']['vae_encode']:.3f} | {enc['s']['umt5']:.3f} | {enc['s']['vlm']:.3f} | "
                  f"{enc['s_per_sample']:.3f} | {enc['peak_gib']['vae_encode']} |"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    from nexus import checks
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench/gpu_report")
    p.add_argument("--tiny", action="store_true", help="tiny models and shapes (no GPU needed): a smoke test")
    p.add_argument("--steps", type=checks.positive_int, default=4, help="sampling steps per timed run")
    p.add_argument("--repeats", type=checks.positive_int, default=3)
    p.add_argument("--train-steps", type=checks.positive_int, default=6)
    p.add_argument("--timeout", type=checks.positive_int, default=1800, help="seconds per measurement")
    a = p.parse_args(argv)
    checks.output_folder("--out", a.out)
    import diffusers
    import torch
    cuda = torch.cuda.is_available()
    if not cuda and not a.tiny:
        raise checks.UserError("no CUDA device here; run on a GPU machine, or pass --tiny for the smoke test")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    shape = ["--frames", "9", "--height", "32", "--width", "32"] if a.tiny else \
        ["--preset", "--frames", "81", "--height", "480", "--width", "832"]
    report = {"device": torch.cuda.get_device_name() if cuda else "cpu", "when": time.strftime("%Y-%m-%d %H:%M"),
              "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                           "python": platform.python_version()},
              "shape": "9x32x32 (tiny)" if a.tiny else "81x480x832", "repeats": a.repeats}
    report["context"] = run("context", [py, "-c", CONTEXT], out / "none", a.timeout) if cuda else \
        {"error": "no CUDA device"}
    variants = [("default", [])]
    if cuda:
        variants += [("cudnn", ["--attention", "_native_cudnn"])]
        if importlib.util.find_spec("flash_attn"):
            variants += [("flash", ["--attention", "flash"])]
    variants += [("compiled", ["--compile"])]
    if cuda and torch.cuda.device_count() > 1:       # the small generator on a second GPU, concurrently
        variants += [("two-gpus", ["--small-device", "cuda:1"])]
    report["sampling"] = [run(f"sample-{n}", [py, "tools/bench_sample.py", *shape, "--steps", str(a.steps),
                                              "--repeats", str(a.repeats), *extra, "--out", str(out / f"sample-{n}.json")],
                              out / f"sample-{n}.json", a.timeout) for n, extra in variants]
    train = ["recipe=tiny", "paths.tiny_models=runs/.tiny_models", "trainer.accelerator=cpu"] if a.tiny else \
        ["recipe=omni_wan13b", "bench.preset=wan2.1-t2v-1.3b", "strategy=auto", "trainer.devices=1"]
    runs = [("default", []), ("compiled", ["model.compile=true"])]
    if a.tiny or (os.environ.get("NEXUS_WAN_PATH") and os.environ.get("NEXUS_VLM_PATH")):
        runs.append(("raw", ["bench.kind=raw"]))       # the encoders in the step: their weights must exist
    report["training"] = [run(f"train-{n}", [py, "tools/bench_train.py", *train, f"bench.steps={a.train_steps}",
                                             "bench.warmup=2", *extra, f"bench.out={out / f'train-{n}.json'}"],
                              out / f"train-{n}.json", a.timeout) for n, extra in runs]
    report["encoders"] = run("encode", [py, "tools/bench_encode.py", *[x for x in shape if x != "--preset"],
                                        *(["--preset"] if not a.tiny else []), "--repeats", str(a.repeats),
                                        "--out", str(out / "encode.json")], out / "encode.json", a.timeout)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out / 'report.json'} and {out / 'report.md'}")


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
