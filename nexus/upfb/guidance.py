"""Classifier-free guidance of each generator (paper Eq. 2-3).

paper:    v = v(c) + s (v(c) - v(null))     (paper and reference code; = standard form with s + 1)
standard: v = v(null) + s (v(c) - v(null))  (diffusers' WanPipeline)
"""
from __future__ import annotations

import torch

CFG_FORMS = ("paper", "standard")


def guided(v_cond: torch.Tensor, v_null: torch.Tensor, scale: float = 5.0, form: str = "paper") -> torch.Tensor:
    if form not in CFG_FORMS:
        raise ValueError(f"cfg_form={form!r}: choose one of {CFG_FORMS}")
    base = v_cond if form == "paper" else v_null
    return base + scale * (v_cond - v_null)
