"""Wan VAE + latent normalisation (diffusers pipelines normalise outside the VAE; so do we)."""
from __future__ import annotations

import torch


def _stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, device=like.device, dtype=like.dtype).view(shape)
    std = torch.tensor(vae.config.latents_std, device=like.device, dtype=like.dtype).view(shape)
    return mean, std


def to_model_video(video: torch.Tensor) -> torch.Tensor:
    """Decoded uint8 clips (B, T, H, W, 3), as the data loader ships them, -> float (B, 3, T, H, W) in [-1, 1].
    Float input is returned as is."""
    if video.dtype != torch.uint8:
        return video
    return video.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)


@torch.no_grad()
def encode_video(vae, video: torch.Tensor) -> torch.Tensor:
    """video (B, 3, T, H, W) in [-1, 1], or uint8 (B, T, H, W, 3) -> normalised latents (B, z, (T-1)/4+1, H/8, W/8).

    Uses the posterior mode (deterministic), so precomputed and on-the-fly latents agree."""
    vae_dtype = next(vae.parameters()).dtype
    video = to_model_video(video)
    z = vae.encode(video.to(vae_dtype)).latent_dist.mode()
    mean, std = _stats(vae, z)
    return (z - mean) / std


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents -> video (B, 3, T, H, W) in [-1, 1]."""
    vae_dtype = next(vae.parameters()).dtype
    mean, std = _stats(vae, latents)
    return vae.decode((latents * std + mean).to(vae_dtype)).sample.clamp(-1, 1)
