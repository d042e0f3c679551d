"""End-to-end stage-1 runs through tools/fit.py's code path (compose the real recipes, tiny overrides)."""
import csv
from pathlib import Path

import pytest
import torch

from helpers import compose_fit, tiny_overrides
from nexus.training.launch import fit


def read_losses(run_dir: Path) -> dict[int, float]:
    """step -> loss over every launch of the run (csv/version_0, version_1, ...; later launches win)."""
    out = {}
    for f in sorted((run_dir / "csv").glob("version_*/metrics.csv"), key=lambda f: int(f.parent.name[8:])):
        out |= {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(open(f)) if r.get("train/loss")}
    return out


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


class Crash(RuntimeError):
    pass


class CrashAt(__import__("lightning").pytorch.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, *_):
        if trainer.global_step == self.step:
            raise Crash(f"killed at step {self.step}")


def test_resume_matches_uninterrupted_run(tmp_path, tiny_models, tiny_shards):
    common = ["trainer.max_steps=6", "checkpoint.every_n_steps=3", "checkpoint.keep_last=5", "model.warmup_steps=2"]
    a = fit(compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards, "run.name=straight", *common)))
    straight = Path(a.default_root_dir)
    assert a.global_step == 6
    ckpts = sorted(p.name for p in (straight / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step00000003.ckpt", "step00000006.ckpt"]

    cfg = compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards, "run.name=broken", *common))
    with pytest.raises(Crash):
        fit(cfg, extra_callbacks=[CrashAt(4)])        # dies after step 4: the step-3 checkpoint survives
    broken = Path(cfg.run.dir)
    assert torch.load(broken / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
    b = fit(compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards, "run.name=broken", *common)))
    assert b.global_step == 6

    sa, sb = final_state(straight), final_state(broken)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    la, lb = read_losses(straight), read_losses(broken)
    assert len(la) == 6 and all(lb[s] == pytest.approx(la[s], rel=1e-6) for s in la)
    header = (straight / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("train/grad_norm", "lr-AdamW/connector", "lr-AdamW/generator", "train/device/samples_per_sec",
                "train/device/items_per_sec"):      # items = latent tokens
        assert key in header, key
    # the weights did move
    first = torch.load(straight / "checkpoints" / "step00000003.ckpt", weights_only=False)["state_dict"]
    assert not torch.equal(first["connector.vision_queries"], sa["connector.vision_queries"])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_models, tiny_shards):
    class Poison(__import__("lightning").pytorch.Callback):
        def on_train_batch_start(self, trainer, module, *_):
            if trainer.global_step == 3:
                with torch.no_grad():
                    module.transformer.proj_out.weight.fill_(float("nan"))

    cfg = compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=6",
                                      "checkpoint.every_n_steps=2"))
    from nexus.training.module import NonFiniteLossError
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 3.*last good checkpoint"):
        fit(cfg, extra_callbacks=[Poison()])
    last = torch.load(Path(cfg.run.dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 2
    assert torch.isfinite(last["state_dict"]["transformer.proj_out.weight"]).all()


@pytest.mark.parametrize("recipe", ["tiny", "omni_wan13b", "wan13b_t2v"])
def test_every_recipe_composes_and_runs_a_step(recipe, tmp_path, tiny_models, tiny_shards):
    tiny = ["model.connector={vlm_dim:64,vision_dim:32,vision_layers:1,vision_heads:2,vision_ffn:64,vision_queries:2,"
            "out_dim:32,adapter_layers:1,adapter_heads:2,adapter_ffn:64,adapter_queries:8}",
            "data.num_frames=5", "data.height=32", "data.width=32", "data.num_workers=0", "trainer.precision=32-true",
            "trainer.accelerator=cpu", "trainer.devices=1", "model.encoder_dtype=fp32", "strategy=auto",
            "model.gradient_checkpointing=true"]
    cfg = compose_fit(f"recipe={recipe}", *tiny_overrides(tmp_path, tiny_models, tiny_shards, "trainer.max_steps=1",
                                                          *tiny))
    assert cfg.name == recipe
    if recipe == "omni_wan13b":      # what the recipe itself asks for before the tiny overrides
        full = compose_fit("recipe=omni_wan13b")
        assert full.strategy.stage == 2 and full.data.num_frames == 81 and full.data.height == 480
        assert full.data.width == 832 and full.model.connector.adapter_queries == 256
        assert full.trainer.precision == "bf16-mixed" and full.model.context_len == 2560
    if recipe == "wan13b_t2v":       # the generator alone: no connector, no VLM needed
        full = compose_fit("recipe=wan13b_t2v")
        assert full.model.conditioning == "umt5" and full.model.generator_train == "full"
        assert full.strategy.stage == 2 and full.data.num_frames == 81
        cfg.paths.vlm = None
    t = fit(cfg)
    assert t.global_step == 1
    assert (Path(cfg.run.dir) / "checkpoints" / "last.ckpt").is_file()
    assert (Path(cfg.run.dir) / "config.yaml").is_file()


def test_wandb_offline_and_resumed_under_one_id(tmp_path, tiny_models, tiny_shards, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    runs = []
    for steps in (1, 2):
        over = [o for o in tiny_overrides(tmp_path, tiny_models, tiny_shards) if o != "logger=csv"]
        cfg = compose_fit(*over, "logger=wandb", f"trainer.max_steps={steps}")
        t = fit(cfg)
        runs.append(t.logger.experiment.id)
        t.logger.experiment.finish()
    assert runs[0] == runs[1]                      # the same W&B run, resumed, not a second one
    files = sorted(p.name for p in (Path(cfg.run.dir) / "wandb").glob("offline-run-*/run-*.wandb"))
    assert files == [f"run-{runs[0]}.wandb"] * 2          # both launches wrote to the one run id


def test_precomputed_features_train_like_raw_clips(tmp_path, tiny_models, tiny_shards):
    """Same data, seed and steps: training from precomputed features gives the raw-clip run's losses."""
    from nexus.data.precompute import precompute
    feats = tmp_path / "features"
    precompute(tiny_shards, feats, tiny_models["wan"], tiny_models["vlm"], 9, 32, 32, batch_size=4,
               accelerator="cpu", num_workers=0, progress=False)
    assert (feats / "null.safetensors").is_file()
    common = ["trainer.max_steps=3", "model.warmup_steps=1"]
    fit(compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards, "run.name=raw", *common)))
    cfg = compose_fit(*tiny_overrides(tmp_path, tiny_models, f"{feats}/*.tar", "run.name=feat", "data.kind=features",
                                      f"model.null_features={feats}/null.safetensors", "paths.vlm=/nowhere", *common))
    t = fit(cfg)
    assert t.lightning_module.encoders is None          # nothing but the trained parts in memory
    raw, feat = read_losses(tmp_path / "runs" / "tiny" / "raw"), read_losses(tmp_path / "runs" / "tiny" / "feat")
    assert sorted(raw) == sorted(feat) == [0, 1, 2]
    for s in raw:
        assert feat[s] == pytest.approx(raw[s], rel=1e-4)
