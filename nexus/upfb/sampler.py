"""The two-generator sampling loop (paper Algorithm 1): one latent, both generators guided with their own
conditioning, the velocities bridged by a strategy, one flow-solver step per sampling step.

Strategies (the paper's method, baselines and ablations):
  upfb        temporal weight + frequency fusion (Eq. 4-12), the default
  direct_add  the average of the two guided velocities at every step (paper Fig. 9 / Table 7)
  small_only  the small generator alone (Omni-Video)      large_only  the large generator alone (Wan 14B)
  switch      the small generator up to `switch_step`, the large one after it (a hard hand-off)
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from nexus.upfb.fusion import RMS_MODES, fuse
from nexus.upfb.guidance import CFG_FORMS, guided
from nexus.upfb.lowpass import KERNELS
from nexus.upfb.schedule import CLOCKS, bandwidth, remaining_fraction, temporal_weight

STRATEGIES = ("upfb", "direct_add", "small_only", "large_only", "switch")


@dataclass
class BridgeConfig:
    strategy: str = "upfb"
    gamma_w: float = 0.3
    gamma_hf: float = 0.7
    sigma_min: float = 0.35
    sigma_max: float = 0.70
    clock: str = "timestep"
    rms: str = "reference"
    kernel: str = "reference"
    cfg_form: str = "paper"
    switch_step: int | None = None
    batched_cfg: bool = True          # cond and null forwards of one generator in one batched call

    def __post_init__(self):
        for name, value, allowed in (("strategy", self.strategy, STRATEGIES), ("clock", self.clock, CLOCKS),
                                     ("rms", self.rms, RMS_MODES), ("kernel", self.kernel, KERNELS),
                                     ("cfg_form", self.cfg_form, CFG_FORMS)):
            if value not in allowed:
                raise ValueError(f"bridge.{name}={value!r}: choose one of {allowed}")
        if not self.gamma_w > 0:
            raise ValueError(f"bridge.gamma_w={self.gamma_w} must be > 0")
        if not 0 <= self.gamma_hf <= 1:
            raise ValueError(f"bridge.gamma_hf={self.gamma_hf} must lie in [0, 1]")
        bandwidth(0.0, self.sigma_min, self.sigma_max)     # validates the sigma range
        if self.strategy == "switch" and (self.switch_step is None or self.switch_step < 0):
            raise ValueError("bridge.strategy=switch needs bridge.switch_step >= 0 (the first step the large generator "
                             "takes)")

    @property
    def needs(self) -> tuple[bool, bool]:
        """(small, large): which generators this strategy runs."""
        return needs(self.strategy)


def needs(strategy: str) -> tuple[bool, bool]:
    """(small, large): which generators `strategy` runs."""
    if strategy not in STRATEGIES:
        raise ValueError(f"bridge.strategy={strategy!r}: choose one of {STRATEGIES}")
    return strategy != "large_only", strategy != "small_only"


@dataclass
class Side:
    """One generator with its conditioning: a Wan transformer (plus, for Wan2.2-A14B, the low-noise expert
    `transformer_2` taking over below boundary_ratio * 1000, as diffusers' WanPipeline does)."""
    transformer: torch.nn.Module
    context: torch.Tensor
    null_context: torch.Tensor
    guidance: float = 5.0
    transformer_2: torch.nn.Module | None = None
    boundary_ratio: float | None = None
    guidance_2: float | None = None
    on_expert: object = None          # called with the expert about to run (the sampler's placement swaps experts)
    attention_kwargs: dict | None = None      # passed to every forward (diffusers' attention_kwargs, e.g. LoRA scale)

    def expert(self, t: float, num_train_timesteps: int = 1000) -> tuple[torch.nn.Module, float]:
        if self.transformer_2 is None or self.boundary_ratio is None or t >= self.boundary_ratio * num_train_timesteps:
            return self.transformer, self.guidance
        return self.transformer_2, self.guidance if self.guidance_2 is None else self.guidance_2

    @torch.no_grad()
    def velocity(self, z: torch.Tensor, t: torch.Tensor, form: str = "paper", batched: bool = True) -> torch.Tensor:
        model, scale = self.expert(float(t))
        if self.on_expert is not None:
            self.on_expert(model)
        home, z = z.device, z.to(self.context.device)      # a generator on another device gets its own copy
        # diffusers' model.dtype skips the modules kept in fp32 (Wan's first parameter, scale_shift_table, is one)
        dtype = getattr(model, "dtype", None) or next(model.parameters()).dtype
        b, kw = z.shape[0], {"attention_kwargs": self.attention_kwargs} if self.attention_kwargs else {}
        null_context = self.null_context.expand(b, -1, -1)     # one null condition (or one per prompt) for the batch
        if batched:
            out = model(torch.cat([z, z]).to(dtype), t.expand(2 * b),
                        torch.cat([self.context, null_context]).to(dtype), return_dict=False, **kw)[0]
            cond, null = out[:b], out[b:]
        else:
            cond = model(z.to(dtype), t.expand(b), self.context.to(dtype), return_dict=False, **kw)[0]
            null = model(z.to(dtype), t.expand(b), null_context.to(dtype), return_dict=False, **kw)[0]
        return guided(cond.float(), null.float(), scale, form).to(home)


def bridge(cfg: BridgeConfig, i: int, num_steps: int, t: float, v_small, v_large) -> tuple[torch.Tensor, dict]:
    """The velocity of step i from the guided velocities (either may be None if the strategy skips it)."""
    if cfg.strategy == "small_only":
        return v_small, {}
    if cfg.strategy == "large_only":
        return v_large, {}
    if cfg.strategy == "direct_add":
        return 0.5 * (v_small + v_large), {}
    if cfg.strategy == "switch":
        return (v_small if i < cfg.switch_step else v_large), {}
    w = temporal_weight(remaining_fraction(i, num_steps, t, cfg.clock), cfg.gamma_w)        # Eq. 4
    sigma = bandwidth(w, cfg.sigma_min, cfg.sigma_max)                                      # Eq. 7
    return fuse(v_small, v_large, w, sigma, cfg.gamma_hf, cfg.rms, cfg.kernel), {"w": w, "sigma": sigma}


def sample(latents: torch.Tensor, scheduler, num_steps: int, cfg: BridgeConfig, small: Side | None = None,
           large: Side | None = None, progress: bool = True, trace: list | None = None,
           concurrent: bool = False, callback=None) -> torch.Tensor:
    """Denoise `latents` (B, 16, F, h, w) with a diffusers flow scheduler (UniPC flow or FlowMatch Euler).
    concurrent: the small generator's forward runs in a second thread while the large one's runs (each Side on
    its own device, its context's): the step costs the slower of the two instead of their sum.
    callback(i, t, z, v) -> (z, stop) after each step: the latents to go on from, and whether to stop here (the
    pipeline's callback_on_step_end and interrupt)."""
    need_small, need_large = cfg.needs
    if (need_small and small is None) or (need_large and large is None):
        raise ValueError(f"strategy={cfg.strategy} needs the {'small' if need_small and small is None else 'large'} "
                         f"generator")
    scheduler.set_timesteps(num_steps, device=latents.device)
    timesteps = scheduler.timesteps
    z = latents.float()
    pool = ThreadPoolExecutor(1) if concurrent and need_small and need_large else None
    for i, t in enumerate(tqdm(timesteps, desc=f"sampling ({cfg.strategy})", disable=not progress)):
        run_s = need_small and (cfg.strategy != "switch" or i < cfg.switch_step)
        run_l = need_large and (cfg.strategy != "switch" or i >= cfg.switch_step)
        pending = pool.submit(small.velocity, z, t, cfg.cfg_form, cfg.batched_cfg) if run_s and pool else None
        v_l = large.velocity(z, t, cfg.cfg_form, cfg.batched_cfg) if run_l else None
        v_s = pending.result() if pending is not None else \
            small.velocity(z, t, cfg.cfg_form, cfg.batched_cfg) if run_s else None
        v, info = bridge(cfg, i, len(timesteps), float(t), v_s, v_l)
        if trace is not None:
            trace.append({"step": i, "timestep": float(t), **info})
        z = scheduler.step(v, t, z, return_dict=False)[0]
        if callback is not None:
            z, stop = callback(i, t, z, v)
            if stop:
                break
    if pool is not None:
        pool.shutdown()
    return z
