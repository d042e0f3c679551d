"""G_sigma of Eq. 5-6: a spatial-only, per-channel, per-latent-frame Gaussian low-pass.

reference: the reference code's kernel: normalised, size k = max(3, 2 floor(sqrt(H W) / 1024) + 1)
           (3 at 480p and 720p), zero padding, so borders lose mass;
exact:     k = 2 ceil(3 sigma) + 1, reflect padding: a true (truncated at 3 sigma) Gaussian.
Both are separable, so they run as two 1-D depthwise convolutions.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KERNELS = ("reference", "exact")


def reference_kernel_size(h: int, w: int) -> int:
    return max(3, 2 * math.floor(math.sqrt(h * w) / 1024) + 1)


def gaussian_1d(sigma: float, k: int, dtype=torch.float32, device=None) -> torch.Tensor:
    x = torch.arange(k, dtype=torch.float64, device=device) - (k - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).to(dtype)     # normalised in 1-D => the 2-D outer product is normalised too


def lowpass(v: torch.Tensor, sigma: float, kernel: str = "reference") -> torch.Tensor:
    """v (..., H, W), e.g. (B, C, F, H, W) latents -> the same shape, blurred over H and W only."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r}: choose one of {KERNELS}")
    if sigma < 0:
        raise ValueError(f"sigma={sigma} must be >= 0")
    if sigma == 0:
        return v.clone()
    h, w = v.shape[-2:]
    if kernel == "reference":
        k, mode = reference_kernel_size(h, w), "constant"
    else:   # reflect padding cannot reach past the opposite edge: truncate the kernel there
        k, mode = min(2 * math.ceil(3 * sigma) + 1, 2 * min(h, w) - 1), "reflect"
    g = gaussian_1d(sigma, k, torch.float32, v.device)
    x = v.reshape(-1, 1, h, w).float()
    r = k // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), g.view(1, 1, 1, k))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), g.view(1, 1, k, 1))
    return x.reshape(v.shape).to(v.dtype)
