"""Homogeneous latent space check (METHOD.md, "Generators and latent space"): UPFB adds the two generators'
velocities on one latent, which only makes sense when both use the same VAE latents. Compared from the
folders' config files, before any weights load."""
from __future__ import annotations

from pathlib import Path

from nexus.models.loading import read_config

VAE_KEYS = ("z_dim", "latents_mean", "latents_std", "scale_factor_temporal", "scale_factor_spatial")
TRANSFORMER_KEYS = ("in_channels", "out_channels", "patch_size")


def latent_signature(wan_path: str | Path) -> dict:
    """An original-layout folder (nexus.convert.wan): the VAE's structure from Wan2.1_VAE.pth's shapes (memory-mapped,
    no tensor read) and Wan2.1's latent statistics (the .pth holds none: Wan's code hard-codes them, as diffusers'
    defaults do); the transformer's from config.json and the safetensors headers."""
    from nexus.convert import wan as original
    root = Path(wan_path)
    if original.is_original_wan(root):
        vae, tr = original.vae_folder_config(root), original.transformer_config(root)
    else:
        vae, tr = read_config(root / "vae" / "config.json"), read_config(root / "transformer" / "config.json")
    sig = {f"vae.{k}": vae.get(k) for k in VAE_KEYS}
    sig |= {f"transformer.{k}": (list(tr[k]) if isinstance(tr.get(k), (list, tuple)) else tr.get(k))
            for k in TRANSFORMER_KEYS}
    return sig


def check_latent_space(small_path: str | Path, large_path: str | Path, allow_mismatch: bool = False) -> list[str]:
    """Raise ValueError listing every differing field unless allow_mismatch; returns the differences."""
    a, b = latent_signature(small_path), latent_signature(large_path)
    diffs = [f"{k}: small {a[k]} vs large {b[k]}" for k in a if a[k] != b[k]]
    if diffs and not allow_mismatch:
        raise ValueError(
            f"the small generator ({small_path}) and the large one ({large_path}) do not share a latent space "
            f"(bridging across VAEs gives blurry garbage, paper Table 12):\n  " + "\n  ".join(diffs) +
            "\nUse a large generator with the Wan2.1 VAE (Wan2.1-T2V-14B, Wan2.2-T2V-A14B), or pass "
            "large.allow_latent_mismatch=true to bridge anyway.")
    return diffs


def mmd_rbf(x, y, bandwidth: float | None = None):
    """Squared MMD between samples x (n, d) and y (m, d) with a Gaussian kernel; bandwidth by the median
    heuristic over the pooled pairwise distances when not given (biased V-statistic, >= 0)."""
    import torch
    z = torch.cat([x, y]).double()
    d2 = torch.cdist(z, z).pow(2)
    if bandwidth is None:
        bandwidth = d2[d2 > 0].median().sqrt().item()
    k = torch.exp(-d2 / (2 * bandwidth ** 2))
    n = len(x)
    return (k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()).item()
