"""When the large generator takes over (paper Eq. 4) and how wide the low band is (Eq. 7).

tau is the *remaining* noise fraction, so w = 1 at the first step (the small generator leads) and 0 at
the last (the large one finishes); the paper's printed tau_t = (T-1-t)/(T-1) would invert that and is
read as a typo (METHOD.md, step 2). Two clocks:
  timestep  tau = t / (num_train_timesteps - 1) on the scheduler's shifted timesteps (reference code)
  step      tau = 1 - i / (N - 1) for step i of N
"""
from __future__ import annotations

import math

CLOCKS = ("timestep", "step")


def remaining_fraction(step: int, num_steps: int, timestep: float | None = None, clock: str = "timestep",
                       num_train_timesteps: int = 1000) -> float:
    if clock not in CLOCKS:
        raise ValueError(f"clock={clock!r}: choose one of {CLOCKS}")
    if clock == "timestep":
        if timestep is None:
            raise ValueError("clock='timestep' needs the scheduler's timestep")
        return min(1.0, max(0.0, float(timestep) / (num_train_timesteps - 1)))
    return 1.0 - step / (num_steps - 1) if num_steps > 1 else 1.0


def temporal_weight(tau: float, gamma_w: float = 0.3) -> float:
    """Eq. 4: w = (1 + cos(pi (1 - tau)^gamma_w)) / 2; smaller gamma_w hands off to the large generator sooner."""
    if not gamma_w > 0:
        raise ValueError(f"gamma_w={gamma_w} must be > 0 (the paper uses 0.2-0.5, default 0.3)")
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau={tau} must lie in [0, 1]")
    return 0.5 * (1.0 + math.cos(math.pi * (1.0 - tau) ** gamma_w))


def bandwidth(w: float, sigma_min: float = 0.35, sigma_max: float = 0.70) -> float:
    """Eq. 7: the Gaussian's sigma (latent pixels) shrinks with w, so the large generator's share of the low
    band grows as the small one hands over."""
    if not 0.0 <= sigma_min <= sigma_max:
        raise ValueError(f"need 0 <= sigma_min <= sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    return sigma_min + (sigma_max - sigma_min) * w


def schedule_table(timesteps, gamma_w: float = 0.3, sigma_min: float = 0.35, sigma_max: float = 0.70,
                   clock: str = "timestep") -> list[dict]:
    """w and sigma at every sampling step, for the scheduler's timesteps (what the sampler will use)."""
    n = len(timesteps)
    rows = []
    for i, t in enumerate(timesteps):
        w = temporal_weight(remaining_fraction(i, n, float(t), clock), gamma_w)
        rows.append({"step": i, "timestep": float(t), "w": w, "sigma": bandwidth(w, sigma_min, sigma_max)})
    return rows
