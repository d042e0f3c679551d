"""What a user sees from the tools: a mistake is one line naming the full key, exit code 2, no traceback, and
nothing created; --help says what the tool does with examples; --debug shows the traceback."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT


def run(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line_error(r, *fragments):
    """exit 2, stderr exactly one line 'error: ...' holding every fragment, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.fixture
def scratch(tmp_path):
    """A run root that must stay empty when a command is refused."""
    root = tmp_path / "runs"
    return root


HYDRA_ERRORS = [
    (("tools/sample.py", "prompt=x", "bridge.strategy=nonsense"), ("bridge.strategy='nonsense'", "choose one of")),
    (("tools/sample.py", "prompt=x", "sampling.num_frames=10"), ("sampling.num_frames=10 is not 4k+1", "use 9 or 13")),
    (("tools/sample.py", "prompt=x", "sampling.num_steps=0"), ("sampling.num_steps=0",)),
    (("tools/sample.py", "prompt=x", "sampling.seed=1.5"), ("sampling.seed=1.5: expected integer",)),
    (("tools/fit.py", "recipe=tiny", "trainer.max_steps=abc"), ("trainer.max_steps=abc: expected integer",)),
    (("tools/fit.py", "recipe=tiny", "data.num_frames=10"), ("data.num_frames=10 is not 4k+1",)),
    (("tools/fit.py", "recipe=tiny", "model.lrr=1"), ("model.lrr: no such key; did you mean model.lr?",)),
    (("tools/fit.py", "recipe=omni_wan14b"), ("recipe=omni_wan14b: no such recipe; choose one of lab_generator, lab_stage1, lumos_release_stage1, omni_wan13b, tiny, wan13b_t2v",)),
    (("tools/fit.py", "recipe=omni_wan13b"), ("data.shards is required", "data.shards=")),
    (("tools/fit.py", "recipe=omni_wan13b", "data.shards=data/tiny/clips", "paths.wan=null"),
     ("paths.wan is not set", "NEXUS_WAN_PATH", "transformer/config.json")),
    (("tools/fit.py", "recipe=tiny", "data.shards=/x/{0..9}.tar"), ("cannot read the override", "quotes")),
    (("tools/fit.py", "-m", "recipe=tiny", "model.lrr=1,2"), ("model.lrr: no such key",)),
    (("tools/fit.py", "recipe=tiny", "eval.enabled=true", "eval.sampling.num_frames=6"),
     ("eval.sampling.num_frames=6 is not 4k+1",)),
    (("tools/evaluate.py",), ("videos is required", "videos=runs/tiny/samples/upfb")),
    (("tools/watch_eval.py",), ("run_dir is required",)),
    (("tools/sample.py", "--bogus"), ("unknown option --bogus",)),
    (("tools/fit.py", "recipe=tiny", "model.warmup_steps=-1"), ("model.warmup_steps=-1: must be >= 0",)),
    (("tools/fit.py", "recipe=tiny", "data.max_bad_fraction=-1"), ("data.max_bad_fraction=-1.0: must be >= 0.0 and <= 1.0",)),
    (("tools/fit.py", "recipe=tiny", f"run.resume={__file__}"), ("not a checkpoint",)),
    (("tools/sample.py", "prompt=x", f"small.export={__file__}"), ("not a checkpoint", "not an export folder")),
]


@pytest.mark.parametrize("args,fragments", HYDRA_ERRORS, ids=[" ".join(a) for a, _ in HYDRA_ERRORS])
def test_hydra_tool_mistakes_are_one_line(args, fragments, scratch):
    r = run(*args, f"run.root={scratch}") if "=" in " ".join(args[1:]) or "-m" in args else run(*args)
    one_line_error(r, *fragments)
    assert not scratch.exists()                      # nothing created


def test_evaluate_typo_folder_creates_nothing(tmp_path):
    one_line_error(run("tools/evaluate.py", f"videos={tmp_path}/typo"), f"videos={tmp_path}/typo: no such folder")
    assert not (tmp_path / "typo").exists()


ARGPARSE_ERRORS = [
    (("tools/export.py", "/nonexistent.ckpt", "/tmp/nexus-never"), ("neither a checkpoint file",)),
    (("tools/plot_schedule.py", "--gamma-w", "0", "--out", "/tmp/nexus-never.png"), ("gamma_w=0.0 must be > 0",)),
    (("tools/submit.py", "nodes=0"), ("nodes=0",)),
    (("tools/submit.py", "trainer.devices=2"), ("tools/submit.py sets trainer.devices",)),
    (("tools/rank_agreement.py", "--a", "/nonexistent", "--b", "/nonexistent2"), ("/nonexistent",)),
    (("tools/latent_mmd.py", "--small", "/x", "--large", "/y", "--frames", "10"), ("--frames=10 is not 4k+1",)),
    (("tools/vrbench.py", "evaluate", "--videos", "/nonexistent", "--judge", "tiny", "--out", "/tmp/nexus-never"),
     ("--videos /nonexistent: no such folder",)),
    (("tools/precompute.py", "--shards", "/nonexistent/*.tar", "--out", "/tmp/nexus-never", "--wan", "/x",
      "--vlm", "/y"), ("--wan=/x: no such folder",)),
    (("tools/prepare_shards.py", "--videos", "/nonexistent", "--manifest", "/nonexistent.csv", "--out",
      "/tmp/nexus-never"), ("--videos /nonexistent is not a folder",)),
    (("tools/bench_data.py", "--frames", "10"), ("--frames=10 is not 4k+1",)),
    (("tools/plot_schedule.py", "--steps", "0", "--out", "/tmp/nexus-never.png"), ("--steps 0: at least 1",)),
    (("tools/prepare_shards.py", "--videos", str(ROOT / "tests"), "--manifest", str(ROOT / "tests" / "empty.csv"),
      "--out", "/tmp/nexus-never"), ("no such file",)),
    (("tools/export.py", __file__, "/tmp/nexus-never"), ("not a checkpoint",)),
    (("tools/bench_sample.py", "--frames", "10"), ("--frames=10 is not 4k+1",)),
]


@pytest.mark.parametrize("args,fragments", ARGPARSE_ERRORS, ids=[a[0] for a, _ in ARGPARSE_ERRORS])
def test_argparse_tool_mistakes_are_one_line(args, fragments):
    one_line_error(run(*args), *fragments)
    assert not Path("/tmp/nexus-never").exists()


def test_debug_shows_the_traceback():
    r = run("tools/sample.py", "prompt=x", "bridge.strategy=nonsense", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr and "bridge.strategy='nonsense'" in r.stderr


@pytest.mark.parametrize("tool,groups,examples", [
    ("fit", ["recipe: lab_generator, lab_stage1, lumos_release_stage1, omni_wan13b, tiny, wan13b_t2v", "strategy: auto, ddp, deepspeed_zero1", "logger: csv, none, wandb"],
     "python tools/fit.py recipe=tiny"),
    ("sample", ["recipe: lumos_nexus_release, nexus_wan14b, nexus_wan22_a14b, tiny"], "python tools/sample.py prompt="),
    ("evaluate", ["recipe: tiny, vbench"], "python tools/evaluate.py recipe=tiny videos="),
    ("watch_eval", ["recipe: lumos_nexus_release, nexus_wan14b, nexus_wan22_a14b, tiny"], "python tools/watch_eval.py recipe=tiny"),
    ("bench_train", ["recipe: lab_generator, lab_stage1, lumos_release_stage1, omni_wan13b, tiny, wan13b_t2v"], "python tools/bench_train.py recipe=tiny"),
])
def test_help_says_what_and_how(tool, groups, examples):
    r = run(f"tools/{tool}.py", "--help")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first and not first.startswith(("usage", "==", tool)), first        # what it does, first
    assert examples in r.stdout
    for g in groups:
        assert g in r.stdout
    assert "evaluate/recipe" not in r.stdout and "sample/recipe" not in r.stdout   # only its own groups


def test_cfg_job_prints_the_config_and_runs_nothing(tmp_path):
    r = run("tools/fit.py", "recipe=tiny", f"run.root={tmp_path}/runs", "--cfg", "job")
    assert r.returncode == 0 and "max_steps: 40" in r.stdout
    assert not (tmp_path / "runs").exists()


def test_console_goes_to_the_run_log_without_third_party_noise(tmp_path, tiny_models, tiny_shards):
    args = ["tools/fit.py", "recipe=tiny", f"run.root={tmp_path}/runs", f"paths.wan={tiny_models['wan']}",
            f"paths.vlm={tiny_models['vlm']}", "paths.tiny_models=null", f"data.shards={tiny_shards}", "logger=csv"]
    r = run(*args, "trainer.max_steps=3", env={"COLUMNS": "120"})
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "runs" / "tiny" / "default" / "fit.log").read_text()
    assert "starting a new run in" in log and "`Trainer.fit` stopped: `max_steps=3` reached." in log
    assert "train step: 100%" in log and "| 3/3 [" in log and "loss=" in log and "grad_norm=" in log
    assert "lr_connector=" in log and "lr_generator=" in log
    assert "\r" not in log and "\x1b[" not in log                 # bars collapsed to their last state
    for noise in ("Setting accelerator to CPU", "Tip:", "enable_nested_tensor", "LeafSpec", "anonymous setting",
                  "srun` command is available"):
        assert noise not in r.stdout + r.stderr, noise
    r = run(*args, "trainer.max_steps=5", env={"COLUMNS": "120"})       # resumed: the bar counts on from step 3
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "runs" / "tiny" / "default" / "fit.log").read_text()
    assert "resuming" in log and "| 5/5 [" in log and "3/3" in log      # both launches, appended
    assert "Epoch" not in r.stdout + r.stderr and "5/3" not in r.stdout + r.stderr


def test_console_log_of_sample_and_evaluate(tmp_path, tiny_models):
    common = [f"run.root={tmp_path}/runs", f"paths.small={tiny_models['wan']}", f"paths.large={tiny_models['wan_large']}",
              "paths.tiny_models=null", "sampling.num_frames=5", "sampling.num_steps=2", "sampling.progress=false"]
    r = run("tools/sample.py", "prompt=a red ball", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "runs" / "tiny" / "samples" / "upfb"
    assert "1 prompts, 0 already in" in (out / "sample.log").read_text()
    r = run("tools/evaluate.py", "recipe=tiny", f"videos={out}", f"paths.tiny_models={Path(tiny_models['wan']).parent}",
            "metrics.dimensions=[temporal_flickering,clip_text_similarity]")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "wrote" in (out / "eval" / "evaluate.log").read_text()
    scores = json.loads((out / "eval" / "scores.json").read_text())
    assert scores["rows"][0]["prompt"] == "a red ball" and scores["prompts_from"] == str(out / "prompts.jsonl")


def test_only_the_known_noise_is_filtered():
    import logging
    import warnings
    from nexus import console
    console.quiet_third_party()
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn("enable_nested_tensor is True, but self.use_nested_tensor is False", UserWarning)
        warnings.warn("a real problem with the data", UserWarning)
    assert [str(w.message) for w in seen] == ["a real problem with the data"]
    got = []
    handler = logging.Handler()
    handler.emit = lambda record: got.append(record.getMessage())
    for name, message in (("DeepSpeed", "Setting accelerator to CPU. If you have GPU ..."),
                          ("DeepSpeed", "ZeRO stage 2 is on"),
                          ("lightning.pytorch.utilities.rank_zero", "💡 Tip: try litlogger"),
                          ("lightning.pytorch.utilities.rank_zero", "GPU available: False, used: False")):
        log = logging.getLogger(name)
        log.addHandler(handler)
        log.warning(message)
        log.removeHandler(handler)
    assert got == ["ZeRO stage 2 is on", "GPU available: False, used: False"]


def test_vrbench_with_no_usable_case_is_refused(tmp_path, tiny_models):
    (tmp_path / "videos").mkdir()
    r = run("tools/vrbench.py", "evaluate", "--videos", str(tmp_path / "videos"), "--judge", tiny_models["vlm"],
            "--out", str(tmp_path / "out"), "--only", "DRF_001,DRF_002")
    assert r.returncode == 2 and "error: no case could be judged (2 skipped; the first: DRF_001: no video" in r.stderr
    assert "no scores.json was written" in r.stderr and not (tmp_path / "out" / "scores.json").exists()
