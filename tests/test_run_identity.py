"""A run is what its command says: sweep jobs get their own runs, run.resume=never starts a run that a plain
rerun will not confuse with the old one, a resume with other settings is refused by key, and the logger gets
the whole record of the run."""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, compose_fit, tiny_overrides
from nexus.errors import UserError
from nexus.training.launch import fit
from nexus.training.loggers import make_logger, wandb_credentials
from nexus.training.run_dir import plan_run


def run_fit(tmp_path, tiny_models, tiny_shards, *extra):
    return fit(compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards, *extra)))


def run_json(run_dir) -> dict:
    return json.loads((Path(run_dir) / "run.json").read_text())


@pytest.mark.slow
def test_a_sweep_trains_one_run_per_job_and_a_rerun_resumes_each(tmp_path, tiny_models, tiny_shards):
    args = ["tools/fit.py", "-m", *tiny_overrides(tmp_path, tiny_models, tiny_shards), "model.lr=1e-3,1e-4",
            "trainer.max_steps=2", "run.name=mr", "logger=wandb"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    r = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = tmp_path / "runs" / "tiny" / "mr"
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["model.lr=0.0001", "model.lr=0.001"]
    ids = {run_json(sweep / j)["wandb_id"] for j in jobs}
    assert len(ids) == 2                                              # two W&B runs
    for j in jobs:
        assert (sweep / j / "checkpoints" / "last.ckpt").is_file()
        assert f"starting a new run in {sweep / j}" in r.stdout + r.stderr
        assert yaml.safe_load((sweep / j / "config.yaml").read_text())["model"]["lr"] == float(j.split("=")[1])
        words = shlex.split(run_json(sweep / j)["launches"][0]["command"])                  # the job's own command
        assert f"run.dir='{sweep / j}'" in words and f"model.lr={j.split('=')[1]}" in words and "-m" not in words
    assert (sweep / "multirun.yaml").is_file()
    again = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    for j in jobs:
        assert f"resuming {sweep / j} from {sweep / j}/checkpoints/step00000002.ckpt" in again.stdout + again.stderr
        assert len(run_json(sweep / j)["launches"]) == 2 and run_json(sweep / j)["wandb_id"] in ids
    # a plain run may not take the sweep's folder
    with pytest.raises(UserError, match="is the folder of a sweep"):
        run_fit(tmp_path, tiny_models, tiny_shards, "run.name=mr", "trainer.max_steps=1")


def test_resume_never_moves_the_old_run_aside_and_a_plain_rerun_resumes_the_new_one(tmp_path, tiny_models,
                                                                                        tiny_shards):
    first = run_fit(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=2")
    run_dir = Path(first.default_root_dir)
    old_id = run_json(run_dir)["wandb_id"]
    second = run_fit(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=2", "run.resume=never")
    assert second.global_step == 2
    archived = [p for p in run_dir.parent.iterdir() if p.name.startswith("default.archived-")]
    assert len(archived) == 1 and run_json(archived[0])["wandb_id"] == old_id
    assert (archived[0] / "checkpoints" / "last.ckpt").is_file()
    new_id = run_json(run_dir)["wandb_id"]
    assert new_id != old_id
    third = run_fit(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=3")      # the plain command
    assert third.global_step == 3
    launches = run_json(run_dir)["launches"]
    assert run_json(run_dir)["wandb_id"] == new_id and len(launches) == 2
    assert launches[1]["checkpoint"] == str(run_dir / "checkpoints" / "step00000002.ckpt")   # last.ckpt's target
    assert launches[1]["changes"] == [{"key": "trainer.max_steps", "was": 2, "now": 3}]
    assert len(run_json(archived[0])["launches"]) == 1                               # the old run untouched


def test_a_resume_with_other_settings_is_refused_by_key(tmp_path, tiny_models, tiny_shards):
    run_fit(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=2")
    with pytest.raises(UserError, match=r"holds a run with other settings \(model\.lr: 0\.001 -> 0\.0001, "
                                        r"seed: 0 -> 1\).*run\.name.*run\.resume=never.*run\.force_resume=true"):
        run_fit(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=3", "model.lr=1e-4", "seed=1")
    t = run_fit(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=3", "model.lr=1e-4", "run.force_resume=true")
    assert t.global_step == 3
    changes = run_json(t.default_root_dir)["launches"][-1]["changes"]
    assert {"key": "model.lr", "was": 0.001, "now": 0.0001} in changes


def test_a_requeued_slurm_job_resumes_despite_resume_never(tmp_path, tiny_models, tiny_shards, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    over = tiny_overrides(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=2", "run.resume=never")
    fit(compose_fit(*over))
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    plan = plan_run(compose_fit(*over))
    assert plan.checkpoint and plan.checkpoint.endswith("step00000002.ckpt") and plan.archive_to is None
    monkeypatch.setenv("SLURM_JOB_ID", "78")                  # another job with that command starts afresh
    plan = plan_run(compose_fit(*over))
    assert plan.checkpoint is None and plan.archive_to is not None


def test_a_new_run_refused_inside_fit_leaves_nothing_and_restores_the_archived_run(tmp_path, tiny_models,
                                                                                     tiny_shards):
    run_dir = tmp_path / "runs" / "tiny" / "default"
    with pytest.raises(ValueError, match="set trainer.max_steps"):
        run_fit(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=-1")
    assert not run_dir.exists()
    run_fit(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=1")
    before = run_json(run_dir)
    with pytest.raises(ValueError, match="set trainer.max_steps"):
        run_fit(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=-1", "run.resume=never")
    assert run_json(run_dir) == before and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert [p.name for p in run_dir.parent.iterdir()] == ["default"]


def test_wandb_gets_the_whole_run(tmp_path, tiny_models, tiny_shards, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    over = [o for o in tiny_overrides(tmp_path, tiny_models, tiny_shards) if o != "logger=csv"]
    t = fit(compose_fit(*over, "logger=wandb", "trainer.max_steps=2", "logger.tags=[ablation,lr]",
                        "logger.notes=first try", "logger.group=g1", "seed=3"))
    exp = t.logger.experiment
    config = dict(exp.config)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    info = run_json(t.default_root_dir)
    assert exp.id == info["wandb_id"] and tuple(exp.tags) == ("ablation", "lr") and exp.notes == "first try"
    assert exp.group == "g1"
    assert config["trainer"]["max_steps"] == 2 and config["data"]["shards"] == tiny_shards and config["seed"] == 3
    assert config["model"]["connector"]["adapter_queries"] == 8 and config["strategy"] == {"name": "auto"}
    n = config["nexus"]
    assert n["recipe"] == "tiny" and n["seed"] == 3 and n["git_commit"] == commit and n["world_size"] == 1
    assert n["command"] == info["launches"][0]["command"] and n["resumed_from"] is None
    p = n["params"]
    count = sum(x.numel() for x in t.lightning_module.parameters())
    assert p["trainable"] == count and p["frozen"] == 0
    assert p["transformer"] + p["connector"] == count and p["frozen_encoders"] > 0
    assert "wan_path" not in config                      # no second, flat copy of the model's arguments
    exp.finish()
    data = next((Path(t.default_root_dir) / "wandb").glob("offline-run-*/run-*.wandb")).read_bytes()
    assert commit.encode() in data and b"ablation" in data        # written to the run's record on disk


def test_wandb_follows_its_own_environment(tmp_path, monkeypatch):
    for k in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not wandb_credentials()
    assert make_logger("wandb", str(tmp_path), "x")._offline                          # no login, no prompt
    (tmp_path / "netrc").write_text("machine wandb.example.org login user password secret\n")
    os.chmod(tmp_path / "netrc", 0o600)
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert wandb_credentials()                                          # a self-hosted server's credentials
    assert not make_logger("wandb", str(tmp_path), "x")._offline
    monkeypatch.delenv("WANDB_BASE_URL")
    assert not wandb_credentials()                                      # ... are not api.wandb.ai's
    monkeypatch.setenv("WANDB_MODE", "online")                          # said explicitly: W&B decides
    lg = make_logger("wandb", str(tmp_path), "x", run_id="abc", entity="team", group="g", tags=["t"], notes="n")
    init = lg._wandb_init
    assert not lg._offline and "anonymous" not in init
    assert (init["id"], init["entity"], init["group"], init["tags"], init["notes"]) == ("abc", "team", "g", ["t"], "n")


def test_the_metric_keys_the_readme_names_are_logged(tmp_path, tiny_models, tiny_shards):
    import csv
    import re
    t = run_fit(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=6", "throughput_window=2")
    with open(Path(t.logger.log_dir) / "metrics.csv") as f:
        logged = set(next(csv.reader(f)))
    text = (ROOT / "docs" / "training.md").read_text()                  # the README's training page
    paragraph = text[text.index("**Logged:**"):text.index("**W&B**")]
    named = set(re.findall(r"`([a-z_]+/[a-z_/]+)`", paragraph))
    assert len(named) >= 8
    assert named - {"train/device/mfu"} <= logged, named - logged      # mfu: only on GPUs Lightning knows
