import math

import pytest
import torch

from nexus import flow


def test_timestep_table_is_shift_3_schedule():
    sigmas, timesteps = flow.timestep_table(shift=3.0)
    assert sigmas.shape == timesteps.shape == (1000,)
    # independent formula: s' = shift * s / (1 + (shift - 1) * s) on s = linspace(1, 1/1000)
    s = torch.linspace(1.0, 1.0 / 1000, 1000)
    expect = 3 * s / (1 + 2 * s)
    assert torch.allclose(sigmas, expect, atol=1e-5)
    assert torch.allclose(timesteps, expect * 1000, atol=1e-2)


def test_shift_moves_mass_to_high_noise():
    sig3, _ = flow.timestep_table(3.0)
    sig1, _ = flow.timestep_table(1.0)
    g = torch.Generator().manual_seed(0)
    s3, _ = flow.sample_timesteps(sig3, sig3 * 1000, 20000, generator=g)
    s1, _ = flow.sample_timesteps(sig1, sig1 * 1000, 20000, generator=torch.Generator().manual_seed(0))
    assert abs(s1.mean().item() - 0.5) < 0.01
    # E[3u/(1+2u)] for u ~ U(0,1) = 3/2 - 3 ln(3)/4 ≈ 0.6760
    assert abs(s3.mean().item() - (1.5 - 0.75 * math.log(3))) < 0.01


def test_noising_target_and_loss():
    x0, e = torch.full((2, 1, 1, 1, 1), 2.0), torch.full((2, 1, 1, 1, 1), -1.0)
    s = torch.tensor([0.25, 1.0])
    xt = flow.noisy_latents(x0, e, s)
    assert xt.flatten().tolist() == [0.75 * 2 - 0.25, -1.0]
    pred = torch.zeros_like(x0)                       # target e - x0 = -3: squared error 9
    assert flow.flow_loss(pred, x0, e, s).item() == pytest.approx(9.0)
    w = torch.tensor([0.25, 1.0]) ** -2.0
    assert flow.flow_loss(pred, x0, e, s, "sigma_sqrt").item() == pytest.approx((9 * w).mean().item())


def test_bad_names():
    with pytest.raises(ValueError, match="flow.weighting='snr'.*none"):
        flow.flow_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.ones(1), "snr")
    with pytest.raises(ValueError, match="flow.sampling"):
        flow.sample_timesteps(torch.ones(3), torch.ones(3), 1, "beta")
