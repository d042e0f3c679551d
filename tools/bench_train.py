"""Stage-1 training speed and memory: s/it, samples/s, latent tokens/s, peak memory and MFU.

Runs the AlignmentModule through Lightning's Trainer (the real precision, clipping and strategy path) on
precomputed-feature batches of the requested shape, so only the trained parts are measured (the frozen
encoders are outside the step, as with precomputed shards). bench.kind=raw feeds clips and captions instead:
the VAE, UMT5 and the VLM run inside every step, as in raw-data training (their weights must exist).

  python tools/bench_train.py recipe=tiny                                         # CPU, tiny models
  python tools/bench_train.py recipe=tiny bench.kind=raw                          # the encoders in the step
  python tools/bench_train.py recipe=omni_wan13b bench.preset=wan2.1-t2v-1.3b strategy=auto \\
      trainer.devices=1                                                           # GPU, real size, random weights

The bench.* keys of recipes/fit.yaml set the step counts, the preset and the output path.
"""
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402
from nexus.cli import ROOT, Tool, hydra_tool  # noqa: E402
from nexus.schema import Fit  # noqa: E402
from nexus.shapes import check_clip_shape, latent_shape  # noqa: E402


def step_timer():
    """A Lightning callback timing each training step (the device synchronised around it)."""
    import lightning as L
    import torch

    class StepTimer(L.Callback):
        def __init__(self):
            self.times, self.t0 = [], None

        def _sync(self, module):
            if module.device.type == "cuda":
                torch.cuda.synchronize(module.device)

        def on_train_batch_start(self, trainer, module, *_):
            self._sync(module)
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, module, *_):
            self._sync(module)
            self.times.append(time.perf_counter() - self.t0)

    return StepTimer()


def batches(n: int, b: int, shape: tuple, text: int, text_dim: int, vlm: int, vlm_dim: int) -> list[dict]:
    import torch
    g = torch.Generator().manual_seed(0)
    one = {"latents": torch.randn(b, *shape, generator=g), "umt5": [torch.randn(text, text_dim, generator=g)] * b,
           "vlm": [torch.randn(vlm, vlm_dim, generator=g)] * b, "caption": [""] * b, "key": [str(i) for i in range(b)]}
    return [one] * n


def raw_batches(n: int, b: int, frames: int, height: int, width: int) -> list[dict]:
    import torch
    g = torch.Generator().manual_seed(0)
    one = {"video": torch.rand(b, 3, frames, height, width, generator=g) * 2 - 1,
           "caption": ["A red ball bounces across a wooden floor."] * b, "key": [str(i) for i in range(b)]}
    return [one] * n


def raw_encoders(cfg, tmp: Path, preset_wan: str | None) -> tuple[str, str | None]:
    """(Wan folder, VLM folder) for raw batches: the encoders' weights must exist (paths.wan / paths.vlm, or the
    tiny models). With bench.preset the random generator is joined with that folder's VAE, UMT5 and tokenizer."""
    from nexus.models.tiny import ensure_tiny_models
    tiny = ensure_tiny_models(cfg.paths.tiny_models) if cfg.paths.get("tiny_models") else None
    enc = cfg.paths.wan or (tiny or {}).get("wan")
    vlm = cfg.paths.vlm or (tiny or {}).get("vlm")
    if not enc or (cfg.model.conditioning == "connector" and not vlm):
        raise ValueError("bench.kind=raw runs the real encoders: set paths.wan (VAE, UMT5, tokenizer) and paths.vlm, "
                         "or paths.tiny_models")
    if preset_wan is None:
        return enc, vlm if cfg.model.conditioning == "connector" else None
    for part in ("vae", "text_encoder", "tokenizer"):
        (Path(preset_wan) / part).symlink_to(Path(enc).resolve() / part)
    return preset_wan, vlm if cfg.model.conditioning == "connector" else None


def planned_step(cfg, wan: str, vlm: str | None) -> int:
    """The memory plan's bytes for this benchmark's step (its batches, no evaluation): what max_memory_allocated
    should read on a GPU (tools/gpu_report.py compares them)."""
    from omegaconf import OmegaConf
    from nexus.plan.fit import fit_plan
    alt = OmegaConf.merge(cfg, {"paths": {"wan": wan, "vlm": vlm}, "data": {"kind": cfg.bench.kind},
                                "eval": {"enabled": False}, "plan": {"gpu": "off"}})
    plan = fit_plan(alt)
    return max(plan.used(p) for p in plan.phases)


def main(cfg) -> None:
    bc = cfg.bench
    steps, warmup, preset, vlm_tokens, text_tokens = bc.steps, bc.warmup, bc.preset, bc.vlm_tokens, bc.text_tokens
    out = checks.output_file("bench.out", bc.out or f"bench/train_{cfg.name}.json")
    checks.tiny_models_folder(cfg)
    d, m = cfg.data, cfg.model
    check_clip_shape(d.num_frames, d.height, d.width)
    import torch
    from hydra.utils import instantiate
    from safetensors.torch import save_file

    from nexus.models.presets import PRESETS
    from nexus.models.tiny import ensure_tiny_models
    from nexus.training.flops import available_flops
    tmp = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    if bc.layers is not None and (not preset or bc.layers < 1):
        raise ValueError(f"bench.layers={bc.layers}: a depth override needs bench.preset and at least 1 layer")
    if preset:                       # a real generator's architecture with random weights: no download
        if preset not in PRESETS:
            raise ValueError(f"bench.preset={preset}: choose one of {sorted(PRESETS)}")
        (tmp / "wan" / "transformer").mkdir(parents=True)
        arch = dict(PRESETS[preset], **({"num_layers": bc.layers} if bc.layers else {}))   # real width, shallow
        (tmp / "wan" / "transformer" / "config.json").write_text(json.dumps(arch))
        wan = str(tmp / "wan")
    else:
        wan = cfg.paths.wan or ensure_tiny_models(cfg.paths.tiny_models)["wan"]
    text_dim, vlm_dim = m.connector.out_dim, m.connector.vlm_dim
    shape = latent_shape(d.num_frames, d.height, d.width)
    if bc.kind == "raw":             # clips + captions: the frozen encoders run inside every step, as in training
        wan, vlm = raw_encoders(cfg, tmp, wan if preset else None)
        module = instantiate(m, _convert_="all", wan_path=wan, vlm_path=vlm, null_features=None,
                             random_init=bool(preset))
        items = raw_batches(steps + warmup, d.batch_size, d.num_frames, d.height, d.width)
    elif bc.kind == "features":
        save_file({"umt5": torch.zeros(text_tokens, text_dim), "vlm": torch.zeros(vlm_tokens, vlm_dim)},
                  str(tmp / "null.safetensors"))
        module = instantiate(m, _convert_="all", wan_path=wan, vlm_path=None,
                             null_features=str(tmp / "null.safetensors"), random_init=bool(preset))
        items = batches(steps + warmup, d.batch_size, shape, text_tokens, text_dim, vlm_tokens, vlm_dim)
    else:
        raise ValueError(f"bench.kind={bc.kind!r}: features (precomputed batches) or raw (clips through the encoders)")
    data = torch.utils.data.DataLoader(items, batch_size=None)
    planned = planned_step(cfg, wan, module.hparams.vlm_path)
    timer = step_timer()
    strategy = instantiate(cfg.strategy) if "_target_" in cfg.strategy else cfg.strategy.name
    trainer = instantiate(cfg.trainer, max_steps=steps + warmup, strategy=strategy, callbacks=[timer], logger=False,
                          enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                          default_root_dir=str(tmp))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, train_dataloaders=data)
    if trainer.global_rank != 0:
        return
    timed = timer.times[warmup:]
    s_it = statistics.median(timed)
    b = d.batch_size * trainer.world_size
    tokens = shape[1] * (shape[2] // 2) * (shape[3] // 2)
    flops = module.batch_flops(data.dataset[0]) * trainer.world_size
    hw_flops = module.batch_flops(data.dataset[0], hardware=True) * trainer.world_size
    dev = module.device
    peak = available_flops(dev, cfg.trainer.precision)
    row = {"recipe": cfg.name, "preset": preset, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "precision": str(cfg.trainer.precision), "strategy": type(trainer.strategy).__name__,
           "kind": bc.kind,
           "world_size": trainer.world_size, "shape": [d.num_frames, d.height, d.width], "batch_size": b,
           "latent_tokens_per_sample": tokens, "steps_timed": len(timed), "s_per_it": s_it,
           "s_per_it_min": min(timed), "samples_per_s": b / s_it, "latent_tokens_per_s": b * tokens / s_it,
           "model_tflops_per_step": flops / 1e12,
           "peak_memory_gb": (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
                              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 1e9,
           "peak_memory_kind": "cuda max allocated" if dev.type == "cuda" else "process max RSS",
           "planned_allocated_gb": planned / 1e9,
           "layers": module.transformer.config.num_layers,
           "mfu": flops / s_it / (peak * trainer.world_size) if peak else None,
           "hardware_tflops_per_step": hw_flops / 1e12,       # + the forwards gradient checkpointing recomputes
           "hfu": hw_flops / s_it / (peak * trainer.world_size) if peak else None}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2))
    mfu = "n/a (no peak FLOPs for this device)" if row["mfu"] is None else f"{100 * row['mfu']:.1f}%"
    print("\n| " + " | ".join(["recipe", "device", "shape", "batch", "s/it (median)", "samples/s", "tokens/s",
                               "peak mem GB", "MFU"]) + " |\n|" + "---|" * 9)
    print(f"| {row['recipe']} | {row['device']} | {'x'.join(map(str, row['shape']))} | {b} | {s_it:.4f} | "
          f"{row['samples_per_s']:.2f} | {row['latent_tokens_per_s']:.0f} | {row['peak_memory_gb']:.2f} | "
          f"{mfu} |")
    print(f"\nwrote {out}")


TOOL = Tool(__doc__, ROOT / "recipes", "fit", Fit, groups=("recipe", "strategy", "logger"),
            defaults=("data.shards=unused",))      # the benchmark feeds its own batches


if __name__ == "__main__":
    hydra_tool(TOOL, main)
