"""Periodic sample evaluation inside a real tiny fit: videos, scores and W&B logs appear at the right steps,
training is left exactly as it would have been, and uneven prompt counts over ZeRO-3 ranks do not hang."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT, compose_fit, tiny_overrides
from nexus.data.video import decode_mp4
from nexus.evaluation.vbench import flicker_score
from nexus.training.launch import fit


@pytest.fixture(scope="module")
def eval_nets(tmp_path_factory):
    from nexus.evaluation.tiny import ensure_tiny_eval_models
    return ensure_tiny_eval_models(tmp_path_factory.mktemp("evalnets"))


def _weights(run: Path) -> dict:
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    return state["state_dict"]


def test_eval_in_tiny_fit(tmp_path, tiny_models, tiny_shards, eval_nets):
    nets = [f"eval.metrics.networks.{k}={v}" for k, v in eval_nets.items()]
    on = compose_fit(*tiny_overrides(tmp_path / "on", tiny_models, tiny_shards, "trainer.max_steps=3",
                                     "checkpoint.every_n_steps=10", "eval.enabled=true", "eval.every_n_steps=2",
                                     "logger=wandb", *nets))
    fit(on)
    import wandb
    wandb.finish()                      # flush the offline run's history file
    run = tmp_path / "on" / "runs" / "tiny" / "default"
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["step_00000002", "step_00000003"]   # every 2 + end
    step = run / "eval" / "step_00000003"
    assert sorted(p.name for p in step.glob("*.mp4")) == ["000.mp4", "001.mp4"]
    result = json.loads((step / "scores.json").read_text())
    assert result["videos"] == 2 and [r["prompt"] for r in result["rows"]] == ["a red ball bouncing",
                                                                             "the colour of a clear sky"]
    assert set(result["scores"]) == {"temporal_flickering", "motion_smoothness", "dynamic_degree",
                                     "subject_consistency", "background_consistency", "aesthetic_quality",
                                     "clip_text_similarity"}
    assert list(result["unavailable"]) == ["imaging_quality"]
    # the logged value is the formula applied to the written videos, worked out here from the files
    flick = [flicker_score(torch.from_numpy(decode_mp4(str(step / f"{i}.mp4")))).item() for i in ("000", "001")]
    assert result["scores"]["temporal_flickering"] == pytest.approx(sum(flick) / 2, abs=1e-6)
    assert (step / "scores.md").read_text().startswith("# VBench-style scores at step 3")

    wb = next((run / "wandb").glob("offline-run-*"))
    tables = sorted((wb / "files" / "media" / "table" / "eval").glob("prompts_*.table.json"))
    assert len(tables) == 2
    table = json.loads(tables[-1].read_text())
    assert table["columns"][:2] == ["id", "prompt"] and [r[0] for r in table["data"]] == ["000", "001"]
    assert len(list((wb / "files" / "media" / "videos" / "eval").glob("*.mp4"))) == 4
    history = next(wb.glob("*.wandb")).read_bytes()
    assert b"eval/temporal_flickering" in history and b"eval/vbench_quality" in history

    # the evaluation draws from its own generators and restores train mode: training is unchanged by it
    off = compose_fit(*tiny_overrides(tmp_path / "off", tiny_models, tiny_shards, "trainer.max_steps=3",
                                      "checkpoint.every_n_steps=10"))
    fit(off)
    a, b = _weights(run), _weights(tmp_path / "off" / "runs" / "tiny" / "default")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_eval_config_errors(tmp_path, tiny_models, tiny_shards):
    cfg = compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards, "eval.enabled=true",
                                      "eval.strategy=upfb", "eval.large=null"))
    with pytest.raises(FileNotFoundError, match="eval.strategy=upfb needs eval.large"):
        fit(cfg)
    cfg = compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards, "eval.enabled=true", "eval.prompts=[]"))
    with pytest.raises(ValueError, match="eval.prompts"):
        fit(cfg)


@pytest.mark.slow
def test_uneven_prompts_over_zero3_ranks(tmp_path, tiny_models, tiny_shards):
    """3 prompts on 2 ZeRO-3 ranks (sharded weights: every forward needs both ranks) with UPFB and the
    large generator: rank 1 samples a padding prompt instead of waiting, and all 3 videos are scored."""
    from test_deepspeed_fit import free_port
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    env |= {"MASTER_PORT": str(free_port()), "WANDB_MODE": "offline"}
    cmd = [sys.executable, "tools/fit.py", "strategy=deepspeed_zero3", "trainer.devices=2", "trainer.max_steps=1",
           f"run.root={tmp_path}/runs", f"paths.wan={tiny_models['wan']}", f"paths.vlm={tiny_models['vlm']}",
           "paths.tiny_models=null", f"data.shards={tiny_shards}", "logger=csv", "trainer.enable_progress_bar=false",
           "eval.enabled=true", "eval.strategy=upfb", f"eval.large={tiny_models['wan_large']}",
           "eval.prompts=[a red ball,a blue cube,a green tree]", "eval.sampling.num_steps=2"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    step = tmp_path / "runs" / "tiny" / "default" / "eval" / "step_00000001"
    assert sorted(p.name for p in step.glob("*.mp4")) == ["000.mp4", "001.mp4", "002.mp4"]   # no padding left
    result = json.loads((step / "scores.json").read_text())
    assert result["videos"] == 3 and result["strategy"] == "upfb"
    assert [r["id"] for r in result["rows"]] == ["000", "001", "002"]


def test_upfb_eval_loads_the_large_generator_in_the_compute_dtype(tmp_path, tiny_models, tiny_shards, monkeypatch):
    """Training at bf16-mixed keeps fp32 master weights; the frozen large generator of an evaluation loads in bf16
    (what the mixed-precision step computes in), not in the trained parameters' fp32."""
    import nexus.evaluation.callback as callback
    from nexus.training.flops import precision_dtype
    assert precision_dtype("bf16-mixed") is torch.bfloat16
    assert precision_dtype("16-mixed") is torch.float16
    assert precision_dtype("32-true") is None          # full precision: the trained parameters' own dtype
    loaded = []
    real = callback.load_large

    def spy(path, dtype):
        loaded.append(dtype)
        return real(path, dtype)
    monkeypatch.setattr(callback, "load_large", spy)
    cfg = compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=1",
                                      "trainer.precision=bf16-mixed", "eval.enabled=true", "eval.strategy=upfb",
                                      f"eval.large={tiny_models['wan_large']}", "eval.prompts=[a red ball]",
                                      "eval.sampling.num_steps=2"))
    fit(cfg)
    step = tmp_path / "runs" / "tiny" / "default" / "eval" / "step_00000001"
    assert loaded == [torch.bfloat16] and (step / "000.mp4").is_file()
