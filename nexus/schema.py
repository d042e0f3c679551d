"""Typed schemas of the tools' configs (OmegaConf structured configs). The YAML files under recipes/ hold the
values and their comments; these dataclasses hold the types, so `trainer.max_steps=abc` or `sampling.seed=1.5`
is refused by name before anything runs (nexus.cli). A key added to a YAML file must be added here too (the
tests compose every tool's config against its schema).

Fields typed Any take several forms on purpose (trainer.devices: 8 | "auto" | [0, 1]); Dict-typed sections and
those listed in OPEN also take keys that are not in the YAML (`+trainer.detect_anomaly=true`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf


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
    num_frames: int = MISSING
    height: int = MISSING
    width: int = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    seed: int = MISSING
    target_fps: Optional[float] = MISSING
    start: str = MISSING
    buckets: Any = MISSING
    max_bad_fraction: float = MISSING
    decoder: str = MISSING
    decode_threads: Any = MISSING       # a number >= 0 or "auto"
    worker_type: str = MISSING
    decode_device: str = MISSING


@dataclass
class Connector:
    vlm_dim: int = MISSING
    vision_dim: int = MISSING
    vision_layers: int = MISSING
    vision_heads: int = MISSING
    vision_ffn: int = MISSING
    vision_queries: int = MISSING
    out_dim: int = MISSING
    adapter_layers: int = MISSING
    adapter_heads: int = MISSING
    adapter_ffn: int = MISSING
    adapter_queries: int = MISSING
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
    load_at_once: int = MISSING
    context_len: int = MISSING
    null_features: Optional[str] = MISSING
    encoder_dtype: str = MISSING
    cfg_dropout: float = MISSING
    umt5_dropout: float = MISSING
    text_len: int = MISSING
    shift: float = MISSING
    timestep_sampling: str = MISSING
    loss_weighting: str = MISSING
    lr: float = MISSING
    connector_lr: Optional[float] = MISSING
    weight_decay: float = MISSING
    warmup_steps: int = MISSING
    seed: int = MISSING


@dataclass
class Trainer:
    _target_: str = MISSING
    accelerator: str = MISSING
    devices: Any = MISSING
    num_nodes: int = MISSING
    precision: Any = MISSING
    max_steps: int = MISSING
    gradient_clip_val: Optional[float] = MISSING
    accumulate_grad_batches: int = MISSING
    log_every_n_steps: int = MISSING
    enable_progress_bar: bool = MISSING
    enable_model_summary: bool = MISSING
    use_distributed_sampler: bool = MISSING
    limit_val_batches: Any = MISSING
    num_sanity_val_steps: int = MISSING


@dataclass
class Checkpoint:
    every_n_steps: int = MISSING
    keep_last: int = MISSING


@dataclass
class Metrics:
    networks: Dict[str, Optional[str]] = MISSING
    dimensions: Optional[List[str]] = MISSING
    fps: int = MISSING
    dtype: str = MISSING


@dataclass
class ToolMetrics(Metrics):
    device: str = MISSING


@dataclass
class Eval:
    enabled: bool = MISSING
    every_n_steps: int = MISSING
    at_end: bool = MISSING
    prompts: Optional[List[str]] = MISSING
    prompt_file: Optional[str] = MISSING
    strategy: str = MISSING
    large: Optional[str] = MISSING
    log_videos: int = MISSING
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
    steps: int = MISSING
    warmup: int = MISSING
    preset: Optional[str] = MISSING
    layers: Optional[int] = MISSING
    vlm_tokens: int = MISSING
    text_tokens: int = MISSING
    out: Optional[str] = MISSING


@dataclass
class FitPlan:
    gpu: str = MISSING
    generator: str = MISSING
    large: str = MISSING
    vlm: str = MISSING
    vlm_tokens: int = MISSING


@dataclass
class Fit:
    name: str = MISSING
    seed: int = MISSING
    throughput_window: int = MISSING
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
    gamma_w: float = MISSING
    gamma_hf: float = MISSING
    sigma_min: float = MISSING
    sigma_max: float = MISSING
    clock: str = MISSING
    rms: str = MISSING
    kernel: str = MISSING
    cfg_form: str = MISSING
    switch_step: Optional[int] = MISSING
    batched_cfg: bool = MISSING


@dataclass
class Sampling:
    num_frames: int = MISSING
    height: int = MISSING
    width: int = MISSING
    num_steps: int = MISSING
    scheduler: str = MISSING
    shift: float = MISSING
    seed: int = MISSING
    fps: int = MISSING
    guidance_small: float = MISSING
    guidance_large: float = MISSING
    guidance_large_2: Optional[float] = MISSING
    dtype: str = MISSING
    context_len: int = MISSING
    text_len: int = MISSING
    batch_size: int = MISSING
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
    rank_seed_stride: int = MISSING
    video: str = MISSING


@dataclass
class SamplePlan:
    gpu: str = MISSING
    small: str = MISSING
    large: str = MISSING
    vlm: str = MISSING
    vlm_tokens: int = MISSING
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
    poll_s: float = MISSING
    once: bool = MISSING
    stop_after_idle_s: float = MISSING
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


OPEN = ("trainer",)      # sections (besides the Dict-typed ones) that take keys beyond the YAML's


def validate(cfg: DictConfig, schema: type) -> DictConfig:
    """`cfg` merged onto the schema: a value of the wrong type raises OmegaConf's ValidationError naming the
    full key. Returns the typed config (struct mode: an unknown key is an error, as in Hydra's config)."""
    typed = OmegaConf.structured(schema)
    for key in OPEN:
        node = OmegaConf.select(typed, key)
        if isinstance(node, DictConfig):
            OmegaConf.set_struct(node, False)
    merged = OmegaConf.merge(typed, cfg)
    OmegaConf.set_struct(merged, True)
    for key in OPEN:
        node = OmegaConf.select(merged, key)
        if isinstance(node, DictConfig):
            OmegaConf.set_struct(node, False)
    return merged
