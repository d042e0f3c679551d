"""Rectified-flow training maths (METHOD.md, "Stage-1 training"; paper Eq. 1).

x_t = (1 - s) x0 + s e, target velocity e - x0. Training timesteps are drawn from the 1000-step table of
diffusers' FlowMatchEulerDiscreteScheduler with the training shift (3.0), so the timesteps the generator
sees in training are exactly the ones a flow scheduler with that shift would produce.
"""
from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.training_utils import compute_density_for_timestep_sampling, compute_loss_weighting_for_sd3

SAMPLING = ("uniform", "logit_normal", "mode")
WEIGHTING = ("none", "sigma_sqrt", "cosmap")


def timestep_table(shift: float = 3.0, num_train_timesteps: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigmas, timesteps), both (num_train_timesteps,), high noise first."""
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps, shift=shift)
    return sched.sigmas.float().clone(), sched.timesteps.float().clone()


def sample_timesteps(sigmas: torch.Tensor, timesteps: torch.Tensor, batch_size: int, sampling: str = "uniform",
                     generator: torch.Generator | None = None, logit_mean: float = 0.0, logit_std: float = 1.0,
                     mode_scale: float = 1.29) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one table index per sample -> (sigma (B,), timestep (B,)) on the table's device."""
    if sampling not in SAMPLING:
        raise ValueError(f"flow.sampling={sampling!r}: choose one of {SAMPLING}")
    u = compute_density_for_timestep_sampling(sampling, batch_size, logit_mean, logit_std, mode_scale,
                                              device="cpu", generator=generator)
    idx = (u * len(sigmas)).long().clamp_(0, len(sigmas) - 1).to(sigmas.device)
    return sigmas[idx], timesteps[idx]


def noisy_latents(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    s = sigma.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * noise


def flow_loss(pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor,
              weighting: str = "none") -> torch.Tensor:
    """Weighted MSE between the predicted and the true velocity e - x0, averaged over the batch."""
    if weighting not in WEIGHTING:
        raise ValueError(f"flow.weighting={weighting!r}: choose one of {WEIGHTING}")
    w = compute_loss_weighting_for_sd3(weighting, sigma.float())
    err = (pred.float() - (noise - x0).float()).pow(2).flatten(1).mean(1)
    return (w * err).mean()
