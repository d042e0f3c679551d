"""The flow solver's timesteps: diffusers' own UniPC flow schedule, or the released model's (reference) one.

The released model was sampled with Wan's FlowUniPC, built with shift 1 and then `set_timesteps(N, shift=5)`:
sigmas `linspace(sigma_max, 0, N + 1)[:-1]` with sigma_max = 1 - 1/1000 = 0.999 (as float32, the value Wan's init
stores), shifted `s' = shift*s / (1 + (shift-1)*s)`, timesteps `int64(s' * 1000)` (truncated), final sigma 0.
diffusers' `UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=shift)` starts from `linspace(1, 1/1000)`
instead: at 50 steps 27 timesteps differ by 1-4 and the first sigma is 0.999999 instead of 0.99980. Passing the
reference sigmas to diffusers' `set_timesteps(sigmas=...)` (which shifts them with flow_shift and truncates the
same way) reproduces Wan's schedule exactly; the step rule (bh2, order 2, predict_x0, lower_order_final) is
diffusers' own, from which Wan's FlowUniPC was copied. No Wan code is used.
"""
from __future__ import annotations

import numpy as np
from diffusers import UniPCMultistepScheduler


def reference_sigma_max(num_train_timesteps: int = 1000) -> float:
    """Wan's init sigma_max: 1 - 1/T through a float32 tensor (`.item()`), 0.9990000128746033 for T = 1000.
    (At 50 steps the float64 0.999 gives the same timesteps, but 4 of the float32 sigmas differ by 1 ulp.)"""
    return float(np.float32(1.0 - 1.0 / num_train_timesteps))


def reference_sigmas(num_steps: int, num_train_timesteps: int = 1000) -> np.ndarray:
    """The N unshifted sigmas Wan's FlowUniPC starts from (the final 0 is appended by set_timesteps)."""
    return np.linspace(reference_sigma_max(num_train_timesteps), 0.0, num_steps + 1)[:-1].copy()


class ReferenceUniPC(UniPCMultistepScheduler):
    """diffusers' UniPC flow solver on the reference (Wan FlowUniPC) sigmas: a plain `set_timesteps(N)` picks
    them, so every caller (the sampler, tools/plot_schedule.py) gets the reference schedule unchanged."""

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, sigmas=None, mu=None):
        if sigmas is None:
            if num_inference_steps is None or num_inference_steps < 1:
                raise ValueError(f"num_inference_steps={num_inference_steps}: at least 1 sampling step")
            sigmas = reference_sigmas(num_inference_steps, self.config.num_train_timesteps)
        super().set_timesteps(device=device, sigmas=sigmas, mu=mu)


def reference_unipc(shift: float = 5.0) -> ReferenceUniPC:
    if not shift > 0:
        raise ValueError(f"shift={shift} must be > 0")
    return ReferenceUniPC(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift)


# unipc: diffusers' UniPC flow schedule; unipc_reference: the same solver on the released model's (Wan FlowUniPC)
# sigmas; euler: FlowMatch Euler
SCHEDULERS = ("unipc", "unipc_reference", "euler")


def make_scheduler(name: str, shift: float):
    from diffusers import FlowMatchEulerDiscreteScheduler
    if name == "unipc":
        return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift)
    if name == "unipc_reference":
        return reference_unipc(shift)
    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(shift=shift)
    raise ValueError(f"scheduler={name!r}: choose one of {SCHEDULERS}")


def distinct_steps(scheduler: str, shift: float, num_steps: int) -> int:
    """How many distinct timesteps the scheduler makes for num_steps. Its timesteps are integers: with a shift,
    past a few hundred steps some coincide, and diffusers' UniPC then fails mid-sampling (`this_order > 0`)."""
    s = make_scheduler(scheduler, shift)
    s.set_timesteps(num_steps)
    return len(set(s.timesteps.tolist()))
