"""Frequency-aware fusion of the two generators' guided velocities (paper Eq. 5-12, Algorithm 1 l. 10-20).

  LF_X = G_sigma(v_X), HF_X = v_X - LF_X                   (Eq. 5-6)
  LF = w LF_S + (1 - w) LF_L                               (Eq. 8)
  HF = w gamma_hf HF_S + (1 - w) HF_L                      (Eq. 9)
  v = LF + HF                                              (Eq. 10)
RMS (per sample, over the whole tensor):
  paper:     v_L <- v_L RMS(v_S) / RMS(v_L) before the split (Eq. 11), then
             v <- v (RMS(v_S) + RMS(v_L)) / 2 / RMS(v) with that aligned v_L (Eq. 12)
  reference: split and fuse the unscaled v_L, then v <- v RMS(v_S) / RMS(v) (what the public code does)
  off:       neither (the paper's "no RMS" ablation)
"""
from __future__ import annotations

import torch

from nexus.upfb.lowpass import lowpass

RMS_MODES = ("reference", "paper", "off")
EPS = 1e-6


def sample_rms(x: torch.Tensor) -> torch.Tensor:
    """Per-sample RMS over all but the batch axis, shaped to broadcast against x."""
    return x.float().pow(2).flatten(1).mean(1).sqrt().view(-1, *([1] * (x.ndim - 1)))


def fuse(v_small: torch.Tensor, v_large: torch.Tensor, w: float, sigma: float, gamma_hf: float = 0.7,
         rms: str = "reference", kernel: str = "reference") -> torch.Tensor:
    """v_small, v_large: (B, C, F, H, W) guided velocities on the same latent -> the fused velocity."""
    if rms not in RMS_MODES:
        raise ValueError(f"rms={rms!r}: choose one of {RMS_MODES}")
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"w={w} must lie in [0, 1]")
    if not 0.0 <= gamma_hf <= 1.0:
        raise ValueError(f"gamma_hf={gamma_hf} must lie in [0, 1] (the paper uses 0.5-0.8, default 0.7)")
    if v_small.shape != v_large.shape:
        raise ValueError(f"velocities differ in shape: small {tuple(v_small.shape)}, large {tuple(v_large.shape)}")
    vs, vl = v_small.float(), v_large.float()
    if rms == "paper":
        vl = vl * sample_rms(vs) / (sample_rms(vl) + EPS)                       # Eq. 11
    # Eq. 5-10 with LF_L + HF_L = v_L: the large generator's split cancels, so one low-pass (of v_S) suffices:
    #   v = w LF_S + (1 - w) LF_L + w gamma_hf HF_S + (1 - w) HF_L = w (LF_S + gamma_hf HF_S) + (1 - w) v_L
    lf_s = lowpass(vs, sigma, kernel)
    v = w * (lf_s + gamma_hf * (vs - lf_s)) + (1 - w) * vl
    if rms == "paper":
        v = v * 0.5 * (sample_rms(vs) + sample_rms(vl)) / (sample_rms(v) + EPS)  # Eq. 12
    elif rms == "reference":
        v = v * sample_rms(vs) / (sample_rms(v) + EPS)
    return v.to(v_small.dtype)
