"""A careless user's mistakes, in every tool: an output under a regular file or in a read-only folder, an input
file of the wrong kind, a count of 0 or a nan. Each ends with one line `error: ...` naming the key or flag and
the value, exit code 2, no traceback, before anything heavy loads, and nothing is created.

CASES is the table: add a row with case([tool, args...], "expected", "fragments", id="...") (`{tmp}` is the
folder of the inputs below, also the command's working directory, so a default output lands there and would be
seen; `{wan}`, `{wan_large}`, `{vlm}`: the tiny models). Then the unit tests of nexus/checks.py.
"""
import argparse
import json
import os
import pickle
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT
from nexus import checks
from nexus.errors import UserError

IS_ROOT = os.geteuid() == 0
NOT_ROOT = pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")
NO_CUDA = pytest.mark.skipif(checks.cuda_devices() > 0, reason="this machine has a CUDA device")
MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(64)
SLOW_S = 5.0        # a case slower than this is checked too late: move its check before the heavy imports
LATE_S = 40.0       # the checks that need torch (a CUDA device, tokenizers, the shards' members)


def case(args: list[str], *expected: str, code: int = 2, marks=(), id: str, late: bool = False):
    """late: checked after torch and Lightning are imported (within LATE_S), still before any model loads."""
    return pytest.param(args, expected, code, LATE_S if late else SLOW_S, marks=marks, id=id)


TINY = ["recipe=tiny", "run.root={tmp}/runs"]
VR = ["tools/vrbench.py", "evaluate", "--videos", "{tmp}/videos", "--judge", "tiny"]
PRECOMPUTE = ["tools/precompute.py", "--shards", "{tmp}/none/*.tar", "--wan", "{tmp}/none", "--vlm", "{tmp}/none"]
PREPARE = ["tools/prepare_shards.py", "--videos", "{tmp}/videos", "--manifest", "{tmp}/manifest.csv"]
MMD = ["tools/latent_mmd.py", "--small", "{tmp}/none", "--large", "{tmp}/none", "--frames", "5", "--height", "32",
       "--width", "32"]

CASES = [
    # A. outputs under a regular file ({tmp}/file), in a read-only folder ({tmp}/ro) or that are a folder
    case(["tools/fit.py", *TINY, "run.root={tmp}/file/runs"], "run.root={tmp}/file/runs", "{tmp}/file is a file",
         id="fit-run.root-under-file"),
    case(["tools/fit.py", *TINY, "run.dir={tmp}/file/run"], "run.dir={tmp}/file/run", "is a file", id="fit-run.dir"),
    case(["tools/fit.py", *TINY, "run.root={tmp}/ro/runs"], "run.root={tmp}/ro/runs", "not writable",
         marks=NOT_ROOT, id="fit-run.root-read-only"),
    case(["tools/sample.py", "prompt=x", *TINY, "run.root={tmp}/file/runs"], "run.root={tmp}/file/runs",
         id="sample-run.root-under-file"),
    case(["tools/sample.py", "prompt=x", *TINY, "out_dir={tmp}/file/out"], "out_dir={tmp}/file/out", "is a file",
         id="sample-out_dir-under-file"),
    case(["tools/sample.py", "prompt=x", *TINY, "out_dir={tmp}/ro/out"], "out_dir={tmp}/ro/out", "not writable",
         marks=NOT_ROOT, id="sample-out_dir-read-only"),
    case(["tools/evaluate.py", "recipe=tiny", "videos={tmp}/videos", "out={tmp}/file/eval"], "out={tmp}/file/eval",
         "is a file", id="evaluate-out-under-file"),
    case(["tools/evaluate.py", "recipe=tiny", "videos={tmp}/videos", "out={tmp}/ro/eval"], "out={tmp}/ro/eval",
         marks=NOT_ROOT, id="evaluate-out-read-only"),
    case(["tools/watch_eval.py", "recipe=tiny", "run_dir={tmp}/run_file_watch"], "run_dir={tmp}/run_file_watch",
         "eval_watch is a file", id="watch_eval-eval_watch-is-a-file"),
    case(["tools/export.py", "{tmp}/lightning.ckpt", "{tmp}/file/export"], "out={tmp}/file/export", "is a file",
         id="export-out-under-file"),
    case(["tools/convert.py", "tiny-bundle", "--out", "{tmp}/file/bundle"], "--out {tmp}/file/bundle",
         id="convert-out-under-file"),
    case([*PREPARE, "--out", "{tmp}/file/shards"], "--out {tmp}/file/shards", "is a file",
         id="prepare_shards-out-under-file"),
    case(["tools/make_synthetic.py", "--out", "{tmp}/file/clips"], "--out {tmp}/file/clips", "is a file",
         id="make_synthetic-out-under-file"),
    case(["tools/make_synthetic.py", "--out", "{tmp}/ro/clips"], "--out {tmp}/ro/clips", "not writable",
         marks=NOT_ROOT, id="make_synthetic-out-read-only"),
    case([*PRECOMPUTE, "--out", "{tmp}/file/features"], "--out {tmp}/file/features", id="precompute-out-under-file"),
    case(["tools/lab.py", "--scale", "ci", "--root", "{tmp}/file/lab"], "--root {tmp}/file/lab",
         id="lab-root-under-file"),
    case(["tools/plot_schedule.py", "--out", "{tmp}/file/s.png"], "--out {tmp}/file/s.png", "is a file",
         id="plot_schedule-out-under-file"),
    case(["tools/plot_schedule.py", "--out", "{tmp}/videos"], "--out {tmp}/videos", "is a folder",
         id="plot_schedule-out-is-a-folder"),
    case(["tools/plot_schedule.py", "--out", "{tmp}/ro/s.png"], "--out {tmp}/ro/s.png", "not writable",
         marks=NOT_ROOT, id="plot_schedule-out-read-only"),
    case(["tools/plan.py", "fit", "recipe=tiny", "plan.json={tmp}/file/plan.json"], "plan.json={tmp}/file/plan.json",
         id="plan-json-under-file"),
    case(["tools/bench_sample.py", "--out", "{tmp}/file/b.json"], "--out {tmp}/file/b.json",
         id="bench_sample-out-under-file"),
    case(["tools/bench_train.py", *TINY, "bench.out={tmp}/file/b.json"], "bench.out={tmp}/file/b.json",
         id="bench_train-out-under-file"),
    case(["tools/bench_data.py", "--out", "{tmp}/file/d.json"], "--out {tmp}/file/d.json",
         id="bench_data-out-under-file"),
    case(["tools/bench_encode.py", "--out", "{tmp}/file/e.json"], "--out {tmp}/file/e.json",
         id="bench_encode-out-under-file"),
    case([*MMD, "--out", "{tmp}/file/mmd.json"], "--out {tmp}/file/mmd.json", id="latent_mmd-out-under-file"),
    case([*VR, "--out", "{tmp}/file/vr"], "--out {tmp}/file/vr", id="vrbench-out-under-file"),
    case([*VR, "--out", "{tmp}/vr", "--cache", "{tmp}/file/cache"], "--cache {tmp}/file/cache",
         id="vrbench-cache-under-file"),
    case(["tools/vrbench.py", "report", "{tmp}/none", "--out", "{tmp}/file/report"], "--out {tmp}/file/report",
         id="vrbench-report-out-under-file"),
    case(["tools/rank_agreement.py", "--a", "{tmp}/none", "--b", "{tmp}/none", "--json", "{tmp}/file/a.json"],
         "--json {tmp}/file/a.json", id="rank_agreement-json-under-file"),
    case(["tools/gpu_report.py", "--tiny", "--out", "{tmp}/file/report"], "--out {tmp}/file/report",
         id="gpu_report-out-under-file"),
    case(["tools/submit.py", *TINY, "run.root={tmp}/file/runs"], "run.root={tmp}/file/runs", "is a file",
         id="submit-run.root-under-file"),
    # B. files of the wrong kind
    case(["tools/fit.py", *TINY, "run.resume={tmp}/plain.pt"], "run.resume={tmp}/plain.pt",
         "not a Lightning checkpoint", id="fit-resume-not-lightning"),
    case(["tools/fit.py", *TINY, "run.resume={tmp}/clip.mp4"], "run.resume={tmp}/clip.mp4", "an MP4 video",
         id="fit-resume-mp4"),
    case(["tools/fit.py", *TINY, "eval.enabled=true", "eval.prompt_file={tmp}/noprompt.jsonl"],
         "eval.prompt_file={tmp}/noprompt.jsonl", "'prompt'", id="fit-eval-prompt_file-no-prompt"),
    case(["tools/fit.py", *TINY, "model.null_features={tmp}/notes.txt"], "model.null_features={tmp}/notes.txt",
         "a text file", id="fit-null-features-text"),
    case(["tools/fit.py", *TINY, "eval.enabled=true", "eval.metrics.networks.dino={tmp}/clip.mp4"],
         "eval.metrics.networks.dino={tmp}/clip.mp4", "an MP4 video, not a folder", id="fit-eval-network-mp4"),
    case(["tools/sample.py", *TINY, "prompt_file={tmp}/noprompt.jsonl"], "prompt_file={tmp}/noprompt.jsonl",
         "line 1 has no 'prompt' field", id="sample-jsonl-without-prompt"),
    case(["tools/sample.py", *TINY, "prompt_file={tmp}/broken.json"], "prompt_file={tmp}/broken.json",
         "not JSON: line 2", id="sample-broken-json"),
    case(["tools/sample.py", *TINY, "prompt_file={tmp}/clip.mp4"], "prompt_file={tmp}/clip.mp4", "an MP4 video",
         id="sample-mp4-prompt_file"),
    case(["tools/sample.py", "prompt=x", *TINY, "small.export={tmp}/plain.pt"], "small.export={tmp}/plain.pt",
         "not a Lightning checkpoint", id="sample-export-not-lightning"),
    case(["tools/evaluate.py", "recipe=tiny", "videos={tmp}/videos", "manifest={tmp}/noprompt.jsonl"],
         "manifest={tmp}/noprompt.jsonl", "'prompt'", id="evaluate-manifest-without-prompt"),
    case(["tools/evaluate.py", "recipe=tiny", "videos={tmp}/videos", "manifest={tmp}/broken.json"],
         "manifest={tmp}/broken.json", "not JSON", id="evaluate-manifest-broken-json"),
    case(["tools/evaluate.py", "recipe=tiny", "videos={tmp}/videos", "manifest={tmp}/clip.mp4"],
         "manifest={tmp}/clip.mp4", "an MP4 video", id="evaluate-manifest-mp4"),
    case(["tools/evaluate.py", "recipe=tiny", "videos={tmp}/videos", "metrics.networks.clip={tmp}/notes.txt"],
         "metrics.networks.clip={tmp}/notes.txt", "a text file, not a folder", id="evaluate-network-text-file"),
    case(["tools/evaluate.py", "recipe=tiny", "videos={tmp}/videos",
          "metrics.networks.aesthetic_head={tmp}/clip.mp4"], "metrics.networks.aesthetic_head={tmp}/clip.mp4",
         "an MP4 video", id="evaluate-aesthetic-head-mp4"),
    case(["tools/watch_eval.py", "recipe=tiny", "run_dir={tmp}/run", "prompt_file={tmp}/broken.json"],
         "prompt_file={tmp}/broken.json", "not JSON", id="watch_eval-broken-prompt_file"),
    case([*VR, "--out", "{tmp}/vr", "--cases", "{tmp}/clip.mp4"], "--cases {tmp}/clip.mp4", "an MP4 video",
         id="vrbench-cases-mp4"),
    case([*VR, "--out", "{tmp}/vr", "--cases", "{tmp}/broken.json"], "--cases {tmp}/broken.json", "not JSON",
         id="vrbench-cases-broken-json"),
    case(["tools/vrbench.py", "report", "{tmp}/broken.json", "--out", "{tmp}/report"], "runs={tmp}/broken.json",
         id="vrbench-report-broken-scores"),
    case(["tools/export.py", "{tmp}/plain.pt", "{tmp}/export"], "checkpoint={tmp}/plain.pt",
         "not a Lightning checkpoint", id="export-not-lightning"),
    case(["tools/rank_agreement.py", "--a", "{tmp}/broken.json", "--b", "{tmp}/none"], "--a {tmp}/broken.json",
         id="rank_agreement-broken-scores"),
    case([*PREPARE[:-1], "{tmp}/clip.mp4", "--out", "{tmp}/shards"], "--manifest {tmp}/clip.mp4", "an MP4 video",
         id="prepare_shards-manifest-mp4"),
    # C. counts, sizes and numbers
    case([*PRECOMPUTE, "--out", "{tmp}/f", "--batch-size", "0"], "--batch-size 0", id="precompute-batch-size-0"),
    case([*PRECOMPUTE, "--out", "{tmp}/f", "--devices", "abc"], "--devices abc", id="precompute-devices-abc"),
    case([*VR, "--out", "{tmp}/vr", "--frames", "0"], "--frames 0", id="vrbench-frames-0"),
    case([*VR, "--out", "{tmp}/vr", "--max-new-tokens", "0"], "--max-new-tokens 0", id="vrbench-max-new-tokens-0"),
    case([*VR, "--out", "{tmp}/vr", "--device", "cuda"], "--device cuda", "no CUDA device", marks=NO_CUDA,
         id="vrbench-device-cuda"),
    case(["tools/bench_sample.py", "--steps", "0"], "--steps 0", id="bench_sample-steps-0"),
    case(["tools/bench_data.py", "--repeats", "0"], "--repeats 0", id="bench_data-repeats-0"),
    case(["tools/bench_encode.py", "--repeats", "-1"], "--repeats -1", id="bench_encode-repeats-negative"),
    case([*PREPARE, "--out", "{tmp}/shards", "--shard-size-mb", "-1"], "--shard-size-mb -1",
         id="prepare_shards-shard-size-negative"),
    case([*PREPARE, "--out", "{tmp}/shards", "--max-bad-fraction", "2"], "--max-bad-fraction 2",
         id="prepare_shards-bad-fraction-2"),
    case(["tools/make_synthetic.py", "--out", "{tmp}/clips", "--n", "0"], "--n 0", id="make_synthetic-n-0"),
    case(["tools/plot_schedule.py", "--shift", "nan"], "--shift nan", id="plot_schedule-shift-nan"),
    case(["tools/latent_mmd.py", "--small", "x", "--large", "y", "--timesteps", "5000"], "--timesteps 5000",
         id="latent_mmd-timesteps-5000"),
    case(["tools/latent_mmd.py", "--small", "x", "--large", "y", "--tokens", "0"], "--tokens 0",
         id="latent_mmd-tokens-0"),
    case(["tools/lab.py", "--seeds", "0"], "--seeds 0", id="lab-seeds-0"),
    case(["tools/gpu_report.py", "--timeout", "0"], "--timeout 0", id="gpu_report-timeout-0"),
    case(["tools/submit.py", *TINY, "time=forever"], "time=forever", "SLURM time", id="submit-time-forever"),
    case(["tools/evaluate.py", "recipe=tiny", "videos={tmp}/videos", "metrics.fps=0"], "metrics.fps=0",
         id="evaluate-fps-0"),
    case(["tools/evaluate.py", "recipe=tiny", "videos={tmp}/videos", "metrics.device=cuda"], "metrics.device=cuda",
         "no CUDA device", marks=NO_CUDA, id="evaluate-device-cuda"),
    # C. values: by type and range in the schema (nexus/schema.py), before torch is imported
    case(["tools/fit.py", *TINY, "trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches=0",
         "must be >= 1", id="fit-accumulate-0"),
    case(["tools/fit.py", *TINY, "model.lr=inf"], "model.lr=inf", "finite", id="fit-lr-inf"),
    case(["tools/fit.py", *TINY, "trainer.max_steps=-5"], "trainer.max_steps=-5", id="fit-max_steps-negative"),
    case(["tools/fit.py", *TINY, "trainer.precision=16bit"], "trainer.precision=16bit", "choose one of",
         id="fit-precision-16bit"),
    case(["tools/fit.py", *TINY, "trainer.devices=0"], "trainer.devices=0", id="fit-devices-0"),
    case(["tools/plan.py", "fit", *TINY, "trainer.devices=0"], "trainer.devices=0", id="plan-devices-0"),
    case(["tools/sample.py", "prompt=x", *TINY, "sampling.batch_size=0"], "sampling.batch_size=0",
         id="sample-batch_size-0"),
    case(["tools/sample.py", "prompt=x", *TINY, "sampling.guidance_small=inf"], "sampling.guidance_small=inf",
         "finite", id="sample-guidance-inf"),
    case(["tools/sample.py", "prompt=x", *TINY, "sampling.shift=-1"], "sampling.shift=-1.0", "> 0",
         id="sample-shift-negative"),
    case(["tools/sample.py", "prompt=x", *TINY, "bridge.strategy=switch", "bridge.switch_step=1000"],
         "bridge.switch_step=1000", "sampling.num_steps=8", id="sample-switch_step-past-the-schedule"),
    case(["tools/watch_eval.py", "recipe=tiny", "run_dir={tmp}/run", "poll_s=0"], "poll_s=0.0", id="watch-poll-0"),
    # values whose check needs torch or a tokenizer: after the imports, before any model loads
    case(["tools/fit.py", *TINY, "trainer.accelerator=gpu"], "trainer.accelerator=gpu", "no CUDA GPU",
         marks=NO_CUDA, late=True, id="fit-accelerator-gpu-without-cuda"),
    case(["tools/fit.py", *TINY, "model.timestep_sampling=logitnormal"], "model.timestep_sampling='logitnormal'",
         late=True, id="fit-timestep_sampling"),
    case(["tools/fit.py", *TINY, "model.generator_train=lora", "model.lora.r=-1"], "model.lora.r=-1", late=True,
         id="fit-lora-r-negative"),
    case(["tools/fit.py", *TINY, f"data.shards={ROOT}/data/tiny/clips", "data.kind=features"], "data.kind=features", "raw clips (mp4)",
         "set data.kind=raw", late=True, id="fit-features-on-raw-shards"),
    case(["tools/fit.py", *TINY, "+data.buckets=[{num_frames:9}]"], "data.buckets=", "batch_size", late=True,
         id="fit-bucket-missing-keys"),
    case(["tools/sample.py", "prompt=" + "a " * 600, *TINY, "paths.small={wan}", "paths.large={wan_large}",
          "paths.vlm={vlm}", "paths.tiny_models=null"], "UMT5 tokens, more than sampling.text_len=512",
         "sampling.truncate_prompts=true", late=True, id="sample-prompt-too-long"),
    case(["tools/sample.py", "prompt=x", *TINY, "sampling.num_steps=300"], "sampling.num_steps=300",
         "use at most 200 steps", late=True, id="sample-steps-past-distinct-timesteps"),
    case(["tools/watch_eval.py", "recipe=tiny", "run_dir={tmp}/run", "logger=tensorboard"], "logger='tensorboard'",
         late=True, id="watch-logger-tensorboard"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The files a careless user passes: a regular file, a read-only folder, an mp4, broken JSON, a JSONL without
    prompts, a torch file that is no Lightning checkpoint, a (fake, cheap) Lightning checkpoint, a run folder."""
    import torch
    tmp = tmp_path_factory.mktemp("misuse")
    (tmp / "file").write_text("a regular file\n")
    (tmp / "notes.txt").write_text("some notes\n")
    (tmp / "clip.mp4").write_bytes(MP4_HEAD)
    (tmp / "videos").mkdir()
    (tmp / "videos" / "a.mp4").write_bytes(MP4_HEAD)
    (tmp / "broken.json").write_text('{"a": 1,\n "b" 2}\n')
    (tmp / "noprompt.jsonl").write_text('{"id": "a"}\n')
    (tmp / "manifest.csv").write_text("path,caption\na.mp4,a red ball\n")
    torch.save({"weights": torch.zeros(2)}, tmp / "plain.pt")
    torch.save({"pytorch-lightning_version": "2.5", "state_dict": {}}, tmp / "lightning.ckpt")
    (tmp / "run" / "checkpoints").mkdir(parents=True)
    (tmp / "run_file_watch" / "checkpoints").mkdir(parents=True)
    (tmp / "run_file_watch" / "eval_watch").write_text("not a folder\n")
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)
    yield tmp
    (tmp / "ro").chmod(0o755)


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("args,expected,code,limit", CASES)
def test_misuse_is_one_line_and_creates_nothing(inputs, tiny_models, args, expected, code, limit):
    def fill(s: str) -> str:             # {tmp}: the inputs' folder; {wan}, {wan_large}, {vlm}: the tiny models
        for k, v in {"tmp": inputs, **tiny_models}.items():
            s = s.replace(f"{{{k}}}", str(v))
        return s
    command = [str(ROOT / fill(args[0])), *map(fill, args[1:])]
    before = _tree(inputs)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, *command], cwd=inputs, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    took = time.monotonic() - t0
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    for e in map(fill, expected):
        assert e in lines[0], (e, lines[0])
    assert _tree(inputs) == before, f"created: {sorted(_tree(inputs) - before)}"
    assert took < limit * (2 if os.environ.get("CI_SLOW") else 1), f"{took:.1f} s: checked after heavy loading"


# ---- nexus.checks, function by function ----------------------------------------------------------------------
def test_output_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    assert checks.output_folder("run.root", tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert checks.output_folder("run.root", tmp_path) == tmp_path
    assert list(tmp_path.iterdir()) == [tmp_path / "f"]                       # the check creates nothing
    with pytest.raises(UserError, match=rf"^run.root={tmp_path}/f/runs: {tmp_path}/f is a file, not a folder; "
                                        r"choose another run.root$"):
        checks.output_folder("run.root", tmp_path / "f" / "runs")
    with pytest.raises(UserError, match=rf"^--out {tmp_path}/f: {tmp_path}/f is a file"):
        checks.output_folder("--out", tmp_path / "f")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UserError, match="broken symbolic link"):
        checks.output_folder("out", tmp_path / "dangling" / "x")
    with pytest.raises(UserError, match="out is empty"):
        checks.output_folder("out", "")


def test_run_folder_names_the_key_the_problem_is_in(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=r"^run.root=.*/f/runs: "):
        checks.run_folder("run.dir", tmp_path / "f" / "runs" / "tiny" / "x", "run.root", tmp_path / "f" / "runs")
    with pytest.raises(UserError, match=r"^run.dir=.*/f/run: "):         # a run.dir outside run.root
        checks.run_folder("run.dir", tmp_path / "f" / "run", "run.root", tmp_path / "runs")
    assert checks.run_folder("run.dir", tmp_path / "runs" / "a", "run.root", tmp_path / "runs") == tmp_path / "runs" / "a"


@NOT_ROOT
def test_output_folder_read_only(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(UserError, match=rf"out_dir={ro}/x: {ro} is not writable"):
            checks.output_folder("out_dir", ro / "x")
        with pytest.raises(UserError, match="not writable"):
            checks.output_file("--out", ro / "s.png")
    finally:
        ro.chmod(0o755)


def test_output_file(tmp_path):
    (tmp_path / "f").write_text("x")
    assert checks.output_file("--out", tmp_path / "new" / "s.png") == tmp_path / "new" / "s.png"
    assert checks.output_file("--out", tmp_path / "f") == tmp_path / "f"        # overwriting a file is fine
    with pytest.raises(UserError, match=rf"--out {tmp_path}: {tmp_path} is a folder, not a file"):
        checks.output_file("--out", tmp_path)
    with pytest.raises(UserError, match=rf"plan.json={tmp_path}/f/p.json: {tmp_path}/f is a file"):
        checks.output_file("plan.json", tmp_path / "f" / "p.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_file_kind(tmp_path):
    import torch
    from safetensors.torch import save_file
    (tmp_path / "v.mp4").write_bytes(MP4_HEAD)
    (tmp_path / "t.txt").write_text("hello")
    (tmp_path / "e").write_bytes(b"")
    (tmp_path / "i.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    torch.save({"a": torch.zeros(1)}, tmp_path / "w.pt")
    save_file({"a": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as z:
        z.writestr("x.txt", "x")
    kinds = {n: checks.file_kind(tmp_path / n) for n in ("v.mp4", "t.txt", "e", "i.png", "w.pt", "w.safetensors",
                                                         "z.zip")}
    assert kinds == {"v.mp4": "an MP4 video", "t.txt": None, "e": "an empty file", "i.png": "a PNG image",
                     "w.pt": "a torch file (zip format)", "w.safetensors": "a safetensors file",
                     "z.zip": "a zip archive"}
    assert checks.file_kind(tmp_path) == "a folder"


def test_json_file(tmp_path):
    (tmp_path / "ok.json").write_text('{"a": [1, 2]}')
    (tmp_path / "bad.json").write_text('{"a": 1,\n\n "b" 2}')
    (tmp_path / "v.json").write_bytes(MP4_HEAD)
    assert checks.json_file("manifest", tmp_path / "ok.json") == {"a": [1, 2]}
    with pytest.raises(UserError, match=rf"^manifest={tmp_path}/bad.json: not JSON: line 3 column 6: Expecting ':' "
                                        r"delimiter; give a JSON file$"):
        checks.json_file("manifest", tmp_path / "bad.json")
    with pytest.raises(UserError, match="an MP4 video, not a text file"):
        checks.json_file("manifest", tmp_path / "v.json")
    with pytest.raises(UserError, match="no such file"):
        checks.json_file("manifest", tmp_path / "none.json")
    with pytest.raises(UserError, match="a folder, not a file"):
        checks.json_file("--cases", tmp_path)


def test_jsonl_file(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a", "id": "1"}\n\n{"prompt": "b"}\n')
    assert checks.jsonl_file("prompt_file", f, ("prompt",)) == [{"prompt": "a", "id": "1"}, {"prompt": "b"}]
    f.write_text('{"prompt": "a"}\n{"id": "2"}\n')
    with pytest.raises(UserError, match=r"prompt_file=.*p.jsonl: line 2 has no 'prompt' field; .*\"prompt\""):
        checks.jsonl_file("prompt_file", f, ("prompt",))
    f.write_text('{"prompt": "a"}\n["x"]\n')
    with pytest.raises(UserError, match="line 2 is list, not a JSON object"):
        checks.jsonl_file("prompt_file", f, ("prompt",))
    f.write_text('{"prompt": "a"}\n{"prompt": \n')
    with pytest.raises(UserError, match="not JSON lines: line 2 column"):
        checks.jsonl_file("prompt_file", f)
    f.write_bytes(b"\xff\xfe\x00bin")
    with pytest.raises(UserError, match="not UTF-8 text"):
        checks.jsonl_file("prompt_file", f)


def test_text_file(tmp_path):
    (tmp_path / "p.txt").write_text("a\nb\n")
    (tmp_path / "v.mp4").write_bytes(MP4_HEAD)
    assert checks.text_file("prompt_file", tmp_path / "p.txt") == "a\nb\n"
    with pytest.raises(UserError, match="prompt_file=.*v.mp4: an MP4 video, not a text file"):
        checks.text_file("prompt_file", tmp_path / "v.mp4")


def _deepspeed_folder(root: Path, keys: dict | None) -> Path:
    import torch
    ckpt = root / "last.ckpt"
    (ckpt / "checkpoint").mkdir(parents=True)
    (ckpt / "latest").write_text("checkpoint")
    if keys is not None:
        torch.save(keys, ckpt / "checkpoint" / "mp_rank_00_model_states.pt")
    return ckpt


def test_lightning_checkpoint(tmp_path):
    import torch
    good = {"pytorch-lightning_version": "2.5", "state_dict": {"w": torch.zeros(3)}, "epoch": 0}
    torch.save(good, tmp_path / "good.ckpt")
    torch.save(good, tmp_path / "legacy.ckpt", _use_new_zipfile_serialization=False)
    torch.save({"w": torch.zeros(3)}, tmp_path / "plain.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    (tmp_path / "clip.mp4").write_bytes(MP4_HEAD)
    (tmp_path / "notes.txt").write_text("x")
    assert checks.lightning_checkpoint("run.resume", tmp_path / "good.ckpt") == tmp_path / "good.ckpt"
    assert checks.checkpoint_problem(tmp_path / "legacy.ckpt") is None
    assert "without 'pytorch-lightning_version' or 'state_dict'; its keys: w" in \
        checks.checkpoint_problem(tmp_path / "plain.pt")
    assert "holds no dict" in checks.checkpoint_problem(tmp_path / "tensor.pt")
    assert checks.checkpoint_problem(tmp_path / "clip.mp4") == "not a checkpoint (an MP4 video)"
    assert "not a checkpoint" in checks.checkpoint_problem(tmp_path / "notes.txt")
    assert checks.checkpoint_problem(tmp_path / "none") == "no such file or folder"
    with pytest.raises(UserError, match=rf"^run.resume={tmp_path}/plain.pt: not a Lightning checkpoint .*; give a "
                                        r"checkpoint Lightning wrote"):
        checks.lightning_checkpoint("run.resume", tmp_path / "plain.pt")
    ds = _deepspeed_folder(tmp_path / "a", {"pytorch-lightning_version": "2.5", "module": None})
    assert checks.checkpoint_problem(ds) is None
    assert "has no model states" in checks.checkpoint_problem(_deepspeed_folder(tmp_path / "b", None))
    assert "without 'pytorch-lightning_version'" in checks.checkpoint_problem(_deepspeed_folder(tmp_path / "c", {"x": 1}))
    assert "'latest' tag" in checks.checkpoint_problem(tmp_path / "a")


def test_checkpoint_keys_are_read_without_running_the_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))
    with zipfile.ZipFile(tmp_path / "evil.ckpt", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"pytorch-lightning_version": Evil(), "state_dict": {}}))
    assert checks.torch_file_keys(tmp_path / "evil.ckpt") == ["pytorch-lightning_version", "state_dict"]
    assert not (tmp_path / "ran").exists()


def test_weights_file_and_folder(tmp_path):
    import torch
    from safetensors.torch import save_file
    save_file({"weight": torch.zeros(1, 4)}, str(tmp_path / "head.safetensors"))
    torch.save({"weight": torch.zeros(1, 4)}, tmp_path / "head.pth")
    (tmp_path / "head.txt").write_text("not weights")
    assert checks.weights_file("k", tmp_path / "head.safetensors") == tmp_path / "head.safetensors"
    assert checks.weights_file("k", tmp_path / "head.pth", ("torch",)) == tmp_path / "head.pth"
    with pytest.raises(UserError, match=r"^k=.*head.txt: a text file; give a safetensors or torch weights file$"):
        checks.weights_file("k", tmp_path / "head.txt")
    with pytest.raises(UserError, match="a safetensors file; give a torch weights file"):
        checks.weights_file("k", tmp_path / "head.safetensors", ("torch",))
    (tmp_path / "model").mkdir()
    with pytest.raises(UserError, match="a folder without config.json; give a CLIP folder"):
        checks.weights_folder("metrics.networks.clip", tmp_path / "model", "give a CLIP folder")
    (tmp_path / "model" / "config.json").write_text("{}")
    assert checks.weights_folder("metrics.networks.clip", tmp_path / "model", "x") == tmp_path / "model"
    with pytest.raises(UserError, match="a text file, not a folder"):
        checks.weights_folder("metrics.networks.clip", tmp_path / "head.txt", "x")


@pytest.mark.parametrize("fn,good,bad", [
    (checks.positive_int, {"1": 1, "12": 12}, {"0": "at least 1", "-3": "at least 1", "abc": "not a whole number",
                                              "1.5": "not a whole number"}),
    (checks.nonnegative_int, {"0": 0, "4": 4}, {"-1": "at least 0"}),
    (checks.finite_float, {"-1.5": -1.5, "2": 2.0}, {"nan": "not a finite number", "inf": "not a finite number",
                                                     "x": "not a number"}),
    (checks.positive_float, {"0.5": 0.5}, {"0": "must be > 0", "-1": "must be > 0", "nan": "finite"}),
    (checks.nonnegative_float, {"0": 0.0}, {"-0.1": "must be >= 0"}),
    (checks.fraction, {"0": 0.0, "1": 1.0, "0.05": 0.05}, {"1.5": "between 0 and 1"}),
    (checks.float_in(0, 1000), {"0": 0.0, "999": 999.0}, {"5000": "between 0 and 1000"}),
    (checks.auto_or_positive_int, {"auto": "auto", "3": 3}, {"0": "auto or at least 1"}),
    (checks.devices, {"auto": "auto", "2": 2, "-1": -1, "0,1": "0,1"}, {"abc": "number of devices", "0": "devices"}),
])
def test_argparse_types(fn, good, bad):
    for text, value in good.items():
        assert fn(text) == value
    for text, message in bad.items():
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            fn(text)


def test_argument_parser_says_one_line(capsys):
    p = checks.ArgumentParser(prog="tool.py")
    p.add_argument("--steps", type=checks.positive_int, default=6)
    p.add_argument("--clock", choices=checks.choices_of("nexus.upfb.schedule", "CLOCKS"), metavar="CLOCK")
    assert p.parse_args(["--steps", "2", "--clock", "step"]).steps == 2
    for argv, said in ((["--steps", "0"], "error: argument --steps 0: at least 1 (a whole number) (see tool.py --help)"),
                       (["--clock", "x"], "error: argument --clock: invalid choice: 'x' (choose from 'timestep', "
                                          "'step') (see tool.py --help)")):
        with pytest.raises(SystemExit) as e:
            p.parse_args(argv)
        assert e.value.code == 2 and capsys.readouterr().err == said + "\n"


@pytest.mark.parametrize("value", ["90", "30:00", "48:00:00", "2-12", "2-12:30", "2-12:30:00", "UNLIMITED", 90])
def test_slurm_time_accepts_slurm_formats(value):
    assert checks.slurm_time("time", value) == str(value)


@pytest.mark.parametrize("value", ["forever", "1h", "1:2:3:4", "-5", "2-", ""])
def test_slurm_time_refuses_the_rest(value):
    with pytest.raises(UserError, match=f"time={value}: not a SLURM time; use minutes"):
        checks.slurm_time("time", value)


def test_device():
    assert checks.device("metrics.device", "cpu") == "cpu"
    assert checks.device("metrics.device", "auto") == "auto"
    with pytest.raises(UserError, match="metrics.device=gpu0: not a device"):
        checks.device("metrics.device", "gpu0")
    with pytest.raises(UserError, match="--device auto: not a device; use cpu"):
        checks.device("--device", "auto", auto=False)
    if checks.cuda_devices() == 0:
        with pytest.raises(UserError, match=r"metrics.device=cuda: this machine has no CUDA device .* use "
                                            r"metrics.device=cpu or metrics.device=auto"):
            checks.device("metrics.device", "cuda")


def test_prompt_files_are_read_with_their_key(tmp_path):
    from nexus.inference.prompts import load_prompts
    (tmp_path / "p.jsonl").write_text('{"prompt": "a cat"}\n')
    assert [p.text for p in load_prompts(prompt_file=str(tmp_path / "p.jsonl"), key="manifest")] == ["a cat"]
    (tmp_path / "v.json").write_text(json.dumps({"x": {"prompts": [{"id": "A_1"}]}}))
    with pytest.raises(UserError, match=r"manifest=.*v.json: an entry has no 'prompt_en'"):
        load_prompts(prompt_file=str(tmp_path / "v.json"), key="manifest")
    (tmp_path / "w.json").write_text(json.dumps([1, 2]))
    with pytest.raises(UserError, match=r"prompt_file=.*w.json: not a VR-Bench file"):
        load_prompts(prompt_file=str(tmp_path / "w.json"))
