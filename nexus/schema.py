"""Typed schemas of the tools' configs (OmegaConf structured configs). The YAML files under recipes/ hold the
values and their comments; these dataclasses hold the types, so `trainer.max_steps=abc` or `sampling.seed=1.5`
is refused by name before anything runs (nexus.cli). A key added to a YAML file must be added here too (the
tests compose every tool's config against its schema).

Ranges live here too, beside the types (`bounded`): counts are positive, float values finite, fractions in [0, 1],
steps within the schedule; nexus.validation refuses a value outside them by its full key, before any heavy import.

Fields typed Any take several forms on purpose (trainer.devices: 8 | "auto" | [0, 1]); Dict-typed sections and
those listed in nexus.validation.OPEN also take keys that are not in the YAML (`+trainer.detect_anomaly=true`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


def bounded(lo: float | None = None, hi: float | None = None, *, above: float | None = None,
            below: float | None = None, also: tuple = ()):
    """A field with a range: lo <= v <= hi, above < v < below; `also`: values allowed outside it (-1 = no limit)."""
    return field(default=MISSING, metadata={"range": (lo, hi, above, below, also)})


def count(lo: int = 1, also: tuple = ()):
    return bounded(lo, also=also)


FRACTION = dict(lo=0.0, hi=1.0)


@dataclass
class Run:
    name: str = MISSING
    root: str = MISSING
    dir: str = MISSING
    resume: str = MISSING
    force_resume: bool = MISSING


@dataclass
class FitPaths:
    wan: Optional[str] = MISSING
    vlm: Optional[str] = MISSING
    tiny_models: Optional[str] = MISSING


@dataclass
class Data:
    _target_: str = MISSING
    shards: Any = MISSING
    kind: str = MISSING
    num_frames: int = count()
    height: int = count()
    width: int = count()
    batch_size: int = count()
    num_workers: int = count(0)
    seed: int = MISSING
    target_fps: Optional[float] = bounded(above=0)
    start: str = MISSING
    buckets: Any = MISSING
    max_bad_fraction: float = bounded(**FRACTION)
    decoder: str = MISSING
    decode_threads: Any = MISSING       # a number >= 0 or "auto"
    worker_type: str = MISSING
    decode_device: str = MISSING


@dataclass
class Connector:
    vlm_dim: int = count()
    vision_dim: int = count()
    vision_layers: int = count()
    vision_heads: int = count()
    vision_ffn: int = count()
    vision_queries: int = count()
    out_dim: int = count()
    adapter_layers: int = count()
    adapter_heads: int = count()
    adapter_ffn: int = count()
    adapter_queries: int = count()
    mlp_activation: str = MISSING
    ffn_activation: str = MISSING
    markers: str = MISSING


@dataclass
class Model:
    _target_: str = MISSING
    wan_path: Optional[str] = MISSING
    vlm_path: Optional[str] = MISSING
    connector: Connector = field(default_factory=Connector)
    init_from: Optional[str] = MISSING
    prompt_recipe: str = MISSING
    vlm_dtype: Optional[str] = MISSING
    conditioning: str = MISSING
    generator_train: str = MISSING
    lora: Dict[str, Any] = MISSING
    gradient_checkpointing: bool = MISSING
    attention: Optional[str] = MISSING
    compile: bool = MISSING
    load_at_once: int = count(0)
    context_len: int = count()
    null_features: Optional[str] = MISSING
    encoder_dtype: str = MISSING
    cfg_dropout: float = bounded(0, below=1)
    umt5_dropout: float = bounded(0, below=1)
    text_len: int = count()
    shift: float = bounded(above=0)
    timestep_sampling: str = MISSING
    loss_weighting: str = MISSING
    lr: float = bounded(above=0)
    connector_lr: Optional[float] = bounded(above=0)
    weight_decay: float = bounded(0)
    warmup_steps: int = count(0)
    seed: int = MISSING


@dataclass
class Trainer:
    _target_: str = MISSING
    accelerator: str = MISSING
    devices: Any = MISSING
    num_nodes: int = count()
    precision: Any = MISSING
    max_steps: int = count(also=(-1,))
    gradient_clip_val: Optional[float] = bounded(0)
    accumulate_grad_batches: int = count()
    log_every_n_steps: int = count()
    enable_progress_bar: bool = MISSING
    enable_model_summary: bool = MISSING
    use_distributed_sampler: bool = MISSING
    limit_val_batches: Any = MISSING
    num_sanity_val_steps: int = count(0, also=(-1,))


@dataclass
class Checkpoint:
    every_n_steps: int = count()
    keep_last: int = count()


@dataclass
class Metrics:
    networks: Dict[str, Optional[str]] = MISSING
    dimensions: Optional[List[str]] = MISSING
    fps: int = count()
    dtype: str = MISSING


@dataclass
class ToolMetrics(Metrics):
    device: str = MISSING


@dataclass
class Eval:
    enabled: bool = MISSING
    every_n_steps: int = count(0)
    at_end: bool = MISSING
    prompts: Optional[List[str]] = MISSING
    prompt_file: Optional[str] = MISSING
    strategy: str = MISSING
    large: Optional[str] = MISSING
    log_videos: int = count(0)
    sampling: Dict[str, Any] = MISSING
    bridge: Dict[str, Any] = MISSING
    metrics: Metrics = field(default_factory=Metrics)


@dataclass
class Logger:
    kind: str = MISSING
    project: str = MISSING
    entity: Optional[str] = MISSING
    group: Optional[str] = MISSING
    tags: List[str] = MISSING
    notes: Optional[str] = MISSING


@dataclass
class Bench:
    kind: str = MISSING
    steps: int = count()
    warmup: int = count(0)
    preset: Optional[str] = MISSING
    layers: Optional[int] = count()
    vlm_tokens: int = count()
    text_tokens: int = count()
    out: Optional[str] = MISSING


@dataclass
class FitPlan:
    gpu: str = MISSING
    generator: str = MISSING
    large: str = MISSING
    vlm: str = MISSING
    vlm_tokens: int = count()


@dataclass
class Fit:
    name: str = MISSING
    seed: int = MISSING
    throughput_window: int = count()
    tf32: bool = MISSING
    run: Run = field(default_factory=Run)
    paths: FitPaths = field(default_factory=FitPaths)
    data: Data = field(default_factory=Data)
    model: Model = field(default_factory=Model)
    trainer: Trainer = field(default_factory=Trainer)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    eval: Eval = field(default_factory=Eval)
    logger: Logger = field(default_factory=Logger)
    bench: Bench = field(default_factory=Bench)
    plan: FitPlan = field(default_factory=FitPlan)
    strategy: Dict[str, Any] = MISSING


# ---- sampling, the checkpoint watcher, evaluation ------------------------------------------------------------
@dataclass
class SampleRun:
    root: str = MISSING
    name: str = MISSING


@dataclass
class SamplePaths:
    small: Optional[str] = MISSING
    large: Optional[str] = MISSING
    vlm: Optional[str] = MISSING
    tiny_models: Optional[str] = MISSING


@dataclass
class Small:
    export: Optional[str] = MISSING


@dataclass
class Large:
    allow_latent_mismatch: bool = MISSING


@dataclass
class Bridge:
    strategy: str = MISSING
    gamma_w: float = bounded(above=0)
    gamma_hf: float = bounded(**FRACTION)
    sigma_min: float = bounded(**FRACTION)
    sigma_max: float = bounded(**FRACTION)
    clock: str = MISSING
    rms: str = MISSING
    kernel: str = MISSING
    cfg_form: str = MISSING
    switch_step: Optional[int] = count(0)
    batched_cfg: bool = MISSING


@dataclass
class Sampling:
    num_frames: int = count()
    height: int = count()
    width: int = count()
    num_steps: int = count()
    scheduler: str = MISSING
    shift: float = bounded(above=0)
    seed: int = MISSING
    fps: int = count()
    guidance_small: float = bounded(0)
    guidance_large: float = bounded(0)
    guidance_large_2: Optional[float] = bounded(0)
    dtype: str = MISSING
    context_len: int = count()
    text_len: int = count()
    batch_size: int = count()
    progress: bool = MISSING
    offload: str = MISSING
    encoders: str = MISSING
    small_device: str = MISSING
    vae_tiling: bool = MISSING
    attention: Optional[str] = MISSING
    compile: bool = MISSING
    prompt_recipe: Optional[str] = MISSING
    vlm_dtype: Optional[str] = MISSING
    noise: str = MISSING
    rank_seed_stride: int = count(0)
    video: str = MISSING
    truncate_prompts: bool = MISSING


@dataclass
class SamplePlan:
    gpu: str = MISSING
    small: str = MISSING
    large: str = MISSING
    vlm: str = MISSING
    vlm_tokens: int = count()
    connector: bool = MISSING


@dataclass
class SampleTrainer:
    accelerator: str = MISSING
    devices: Any = MISSING
    num_nodes: int = MISSING


@dataclass
class Sample:
    name: str = MISSING
    prompt: Optional[str] = MISSING
    prompt_file: Optional[str] = MISSING
    out_dir: str = MISSING
    overwrite: bool = MISSING
    tf32: bool = MISSING
    run: SampleRun = field(default_factory=SampleRun)
    paths: SamplePaths = field(default_factory=SamplePaths)
    small: Small = field(default_factory=Small)
    large: Large = field(default_factory=Large)
    bridge: Bridge = field(default_factory=Bridge)
    sampling: Sampling = field(default_factory=Sampling)
    trainer: SampleTrainer = field(default_factory=SampleTrainer)
    plan: SamplePlan = field(default_factory=SamplePlan)


@dataclass
class WatchEval(Sample):
    run_dir: str = MISSING
    prompts: Optional[List[str]] = MISSING
    poll_s: float = bounded(above=0)
    once: bool = MISSING
    stop_after_idle_s: float = bounded(0)
    logger: str = MISSING
    logger_project: str = MISSING
    metrics: ToolMetrics = field(default_factory=ToolMetrics)


@dataclass
class EvaluatePaths:
    tiny_models: Optional[str] = MISSING


@dataclass
class Evaluate:
    videos: str = MISSING
    manifest: Optional[str] = MISSING
    out: str = MISSING
    paths: EvaluatePaths = field(default_factory=EvaluatePaths)
    metrics: ToolMetrics = field(default_factory=ToolMetrics)
