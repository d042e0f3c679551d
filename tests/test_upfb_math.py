"""UPFB maths (paper Eq. 2-12) against values worked out independently."""
import math

import numpy as np
import pytest
import torch

from nexus.upfb import (bandwidth, fuse, guided, lowpass, reference_kernel_size, remaining_fraction, sample_rms,
                        temporal_weight)


def test_temporal_weight_small_first_large_last():
    assert temporal_weight(1.0, 0.3) == 1.0                      # first step: the small generator leads
    assert temporal_weight(0.0, 0.3) == pytest.approx(0.0, abs=1e-12)   # last step: the large one finishes
    taus = np.linspace(1, 0, 50)
    ws = [temporal_weight(t, 0.3) for t in taus]
    assert all(a >= b for a, b in zip(ws, ws[1:]))
    # smaller gamma_w hands off sooner: lower w at the same remaining noise
    assert temporal_weight(0.8, 0.2) < temporal_weight(0.8, 0.3) < temporal_weight(0.8, 0.5)
    # a value by hand: tau = 0.5, gamma 0.5 -> 0.5 (1 + cos(pi sqrt(0.5)))
    assert temporal_weight(0.5, 0.5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5 ** 0.5)))
    with pytest.raises(ValueError, match="gamma_w=0 must be > 0"):
        temporal_weight(0.5, 0)


def test_clocks():
    assert remaining_fraction(0, 50, timestep=999) == 1.0                  # reference: t / 999
    assert remaining_fraction(10, 50, timestep=499.5) == pytest.approx(0.5)
    assert remaining_fraction(0, 50, clock="step") == 1.0
    assert remaining_fraction(49, 50, clock="step") == 0.0
    assert remaining_fraction(7, 15, clock="step") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="clock='wall'"):
        remaining_fraction(0, 5, 1.0, clock="wall")


def test_bandwidth():
    assert bandwidth(1.0) == 0.70 and bandwidth(0.0) == 0.35 and bandwidth(0.5, 1.0, 2.0) == 1.5
    with pytest.raises(ValueError, match="sigma_min <= sigma_max"):
        bandwidth(0.5, 2.0, 1.0)


def ref_blur(x: np.ndarray, sigma: float, k: int) -> np.ndarray:
    """Direct 2-D convolution with a normalised k x k Gaussian, zero padding (independent of the code)."""
    ax = np.arange(k) - (k - 1) / 2
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    r = k // 2
    p = np.pad(x, r)
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = (p[i:i + k, j:j + k] * g).sum()
    return out


def test_reference_lowpass_matches_direct_convolution():
    assert reference_kernel_size(60, 104) == 3 and reference_kernel_size(90, 160) == 3
    assert reference_kernel_size(1024, 1024) == 3 and reference_kernel_size(2048, 2048) == 5
    torch.manual_seed(0)
    v = torch.randn(2, 3, 2, 6, 7, dtype=torch.float64)
    out = lowpass(v, 0.7)
    for idx in np.ndindex(2, 3, 2):
        assert np.allclose(out[idx].numpy(), ref_blur(v[idx].numpy(), 0.7, 3), atol=1e-6)


def test_lowpass_is_spatial_only_and_per_channel():
    v = torch.zeros(1, 2, 3, 9, 9)
    v[0, 0, 1, 4, 4] = 1.0
    out = lowpass(v, 0.7)
    assert out[0, 0, 1].sum().item() == pytest.approx(1.0, abs=1e-6)       # interior impulse keeps its mass
    assert out[0, 0, 0].abs().sum() == 0 and out[0, 0, 2].abs().sum() == 0  # no temporal blur
    assert out[0, 1].abs().sum() == 0                                       # no channel mixing
    const = lowpass(torch.ones(1, 1, 1, 5, 5), 0.7)
    g = np.exp(-0.5 / 0.49)
    edge = (1 + g) / (1 + 2 * g)                   # zero padding: a border pixel keeps (1 + g) / (1 + 2g) per axis
    assert const[0, 0, 0, 2, 2].item() == pytest.approx(1.0, abs=1e-6)
    assert const[0, 0, 0, 0, 2].item() == pytest.approx(edge, abs=1e-6)
    assert const[0, 0, 0, 0, 0].item() == pytest.approx(edge ** 2, abs=1e-6)


def test_exact_kernel_is_a_true_gaussian():
    v = torch.zeros(1, 1, 1, 41, 41, dtype=torch.float64)
    v[..., 20, 20] = 1.0
    sigma = 2.0
    out = lowpass(v, sigma, kernel="exact")[0, 0, 0]
    ax = torch.arange(41, dtype=torch.float64) - 20
    assert out.sum().item() == pytest.approx(1.0, abs=1e-6)
    var = (out.sum(0) * ax ** 2).sum().item()
    assert var == pytest.approx(sigma ** 2, rel=0.03)                        # truncated at 3 sigma
    flat = lowpass(torch.ones(1, 1, 1, 8, 8), 1.0, kernel="exact")
    assert torch.allclose(flat, torch.ones_like(flat), atol=1e-6)            # reflect padding: no edge loss
    with pytest.raises(ValueError, match="kernel='box'"):
        lowpass(v, 1.0, kernel="box")


def test_guidance_forms():
    c, n = torch.tensor([2.0]), torch.tensor([1.0])
    assert guided(c, n, 5.0).item() == 7.0                    # paper: v_c + s (v_c - v_n)
    assert guided(c, n, 5.0, "standard").item() == 6.0        # v_n + s (v_c - v_n)
    assert guided(c, n, 4.0, "standard").item() == guided(c, n, 3.0).item()


def test_fuse_endpoints_and_energy():
    torch.manual_seed(0)
    vs, vl = torch.randn(2, 4, 3, 8, 8), 3 * torch.randn(2, 4, 3, 8, 8)
    assert torch.allclose(fuse(vs, vl, 1.0, 0.7, gamma_hf=1.0, rms="off"), vs, atol=1e-6)
    assert torch.allclose(fuse(vs, vl, 0.0, 0.35, rms="off"), vl, atol=1e-6)
    out = fuse(vs, vl, 0.4, 0.5, rms="reference")
    assert torch.allclose(sample_rms(out), sample_rms(vs), atol=1e-5)        # reference: energy of the small velocity
    # gamma_hf scales only the small generator's high band: w = 1, sigma large vs hand formula
    lf = lowpass(vs, 0.7)
    assert torch.allclose(fuse(vs, vl, 1.0, 0.7, gamma_hf=0.5, rms="off"), lf + 0.5 * (vs - lf), atol=1e-6)


def test_fuse_paper_rms_by_hand():
    vs = torch.full((1, 1, 1, 4, 4), 1.0)
    vl = torch.full((1, 1, 1, 4, 4), -4.0)
    # paper: v_L is first rescaled to RMS(v_S) = 1 -> -1 everywhere; then with sigma 0 (LF = v, HF = 0)
    # v = w * 1 + (1 - w) * (-1) = 2w - 1; finally rescaled to (RMS(v_S) + RMS(aligned v_L)) / 2 = 1
    out = fuse(vs, vl, 0.75, 0.0, rms="paper")
    assert torch.allclose(out, torch.full_like(out, 1.0), atol=1e-5)
    # reference: unscaled v_L in the fusion: v = 0.75 - 1 = -0.25 everywhere, rescaled to RMS(v_S) = 1 -> -1
    out = fuse(vs, vl, 0.75, 0.0, rms="reference")
    assert torch.allclose(out, torch.full_like(out, -1.0), atol=1e-5)
    with pytest.raises(ValueError, match="rms='both'"):
        fuse(vs, vl, 0.5, 0.5, rms="both")


def test_fuse_batches_sample_by_sample():
    torch.manual_seed(1)
    vs, vl = torch.randn(3, 2, 2, 6, 6), torch.randn(3, 2, 2, 6, 6) * torch.tensor([1.0, 5.0, 0.1]).view(3, 1, 1, 1, 1)
    for mode in ("paper", "reference", "off"):
        batched = fuse(vs, vl, 0.3, 0.6, rms=mode)
        for i in range(3):
            assert torch.allclose(batched[i:i + 1], fuse(vs[i:i + 1], vl[i:i + 1], 0.3, 0.6, rms=mode), atol=1e-6)


def test_fuse_equals_the_literal_equations():
    """fuse() skips the large generator's split (it cancels); compare with Eq. 5-10 written out in full."""
    torch.manual_seed(2)
    vs, vl = torch.randn(2, 3, 2, 9, 10), 2 * torch.randn(2, 3, 2, 9, 10)
    for w, sigma, g, kernel in ((0.3, 0.5, 0.7, "reference"), (0.8, 1.5, 0.5, "exact"), (0.0, 0.35, 0.6, "reference")):
        lf_s, lf_l = lowpass(vs, sigma, kernel), lowpass(vl, sigma, kernel)
        lf = w * lf_s + (1 - w) * lf_l                              # Eq. 8
        hf = w * g * (vs - lf_s) + (1 - w) * (vl - lf_l)            # Eq. 6, 9
        assert torch.allclose(fuse(vs, vl, w, sigma, g, rms="off", kernel=kernel), lf + hf, atol=1e-5)   # Eq. 10
        v = lf + hf
        assert torch.allclose(fuse(vs, vl, w, sigma, g, kernel=kernel), v * sample_rms(vs) / sample_rms(v), atol=1e-5)


def test_mmd():
    from nexus.models.latent_space import mmd_rbf
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    assert mmd_rbf(x, x) == pytest.approx(0.0, abs=1e-12)
    assert mmd_rbf(torch.zeros(1, 1), torch.ones(1, 1), bandwidth=1.0) == pytest.approx(2 - 2 * math.exp(-0.5))
    near, far = mmd_rbf(x[:100], x[100:]), mmd_rbf(x[:100], x[100:] + 2.0)
    assert near < 0.05 < far
