"""The released model's solver schedule (Wan FlowUniPC, shift 5) as scheduler `unipc_reference`, against values
computed once, independently, with numpy from Wan's formula and written out here."""
import numpy as np
import pytest
import torch

from nexus.inference.module import check_settings
from nexus.upfb.sampler import BridgeConfig, Side, sample
from nexus.upfb.schedule import temporal_weight
from nexus.upfb.solver import SCHEDULERS, ReferenceUniPC, make_scheduler, reference_sigmas

# sigma_max = float32(0.999); s = linspace(sigma_max, 0, 51)[:-1]; s' = 5s/(1+4s); t = int64(1000 s')
REFERENCE_TIMESTEPS = [
    999, 995, 991, 987, 982, 978, 973, 968, 963, 957, 952, 946, 940, 934, 927, 920, 913, 906, 898, 890,
    882, 873, 863, 854, 843, 833, 821, 809, 796, 783, 768, 753, 737, 720, 701, 681, 660, 636, 611, 584,
    555, 522, 487, 448, 405, 356, 302, 241, 172, 92]
# [s', 0] as float32
REFERENCE_SIGMAS = [
    0.99979985, 0.99573237, 0.9915305, 0.9871874, 0.9826958, 0.978048, 0.9732358, 0.96825016, 0.96308166,
    0.9577199, 0.95215404, 0.94637203, 0.9403611, 0.9341073, 0.92759573, 0.9208101, 0.91373265, 0.9063442,
    0.8986237, 0.89054847, 0.88209325, 0.8732307, 0.86393064, 0.85415983, 0.8438816, 0.8330554, 0.82163614,
    0.8095738, 0.7968125, 0.78328955, 0.7689347, 0.7536689, 0.7374024, 0.7200336, 0.7014464, 0.6815081,
    0.6600657, 0.6369424, 0.6119324, 0.584795, 0.5552468, 0.5229515, 0.4875073, 0.4484302, 0.4051314,
    0.3568877, 0.3028007, 0.24174035, 0.17226514, 0.092506856, 0.0]


def schedule(name: str, steps: int = 50):
    s = make_scheduler(name, 5.0)
    s.set_timesteps(steps, device="cpu")
    return s


def test_reference_schedule_values():
    ref, default = schedule("unipc_reference"), schedule("unipc")
    assert isinstance(ref, ReferenceUniPC)
    assert ref.timesteps.dtype == torch.int64 and ref.timesteps.tolist() == REFERENCE_TIMESTEPS
    assert torch.equal(ref.sigmas, torch.tensor(REFERENCE_SIGMAS, dtype=torch.float32))
    assert ref.sigmas[0].item() == pytest.approx(0.99980, abs=1e-6) and ref.sigmas[-1].item() == 0.0
    # diffusers' default flow schedule: another start (linspace(1, 1/1000)) and so other truncations
    d = default.timesteps.tolist()
    assert REFERENCE_TIMESTEPS[-5:] == [356, 302, 241, 172, 92] and d[-5:] == [359, 305, 244, 175, 96]
    diff = [abs(a - b) for a, b in zip(d, REFERENCE_TIMESTEPS)]
    assert sum(x != 0 for x in diff) == 27 and max(diff) == 4
    assert default.sigmas[0].item() == pytest.approx(0.999999, abs=1e-6)
    # the same as diffusers' own set_timesteps(sigmas=...) on the reference sigmas: no solver code of ours
    from diffusers import UniPCMultistepScheduler
    plain = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
    plain.set_timesteps(sigmas=reference_sigmas(50))
    assert torch.equal(plain.timesteps, ref.timesteps) and torch.equal(plain.sigmas, ref.sigmas)
    # other step counts follow the same formula
    other = schedule("unipc_reference", 7)
    s = np.linspace(float(np.float32(0.999)), 0, 8)[:-1]
    assert other.timesteps.tolist() == (5 * s / (1 + 4 * s) * 1000).astype(np.int64).tolist()


class Toy(torch.nn.Module):
    """A stand-in generator: a velocity that depends on the latent, the timestep and the context."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward(self, z, t, ctx, return_dict=False):
        return (self.scale * z + 1e-3 * t.float().view(-1, 1, 1, 1, 1) + ctx.mean((1, 2)).view(-1, 1, 1, 1, 1)),


def test_sampler_steps_through_reference_timesteps():
    g = torch.Generator().manual_seed(0)
    ctx = [torch.randn(1, 4, 8, generator=g) for _ in range(4)]
    S, L = Side(Toy(0.3), ctx[0], ctx[1]), Side(Toy(-0.2), ctx[2], ctx[3])
    z = torch.randn(1, 16, 1, 4, 4, generator=g)
    traces = {}
    for name in ("unipc_reference", "unipc"):
        traces[name] = []
        out = sample(z.clone(), make_scheduler(name, 5.0), 50, BridgeConfig(), S, L, progress=False,
                     trace=traces[name])
        assert torch.isfinite(out).all()
    ref, default = traces["unipc_reference"], traces["unipc"]
    assert [r["timestep"] for r in ref] == [float(t) for t in REFERENCE_TIMESTEPS]
    # the UPFB weight reads t / 999 of the solver's timesteps: the reference schedule moves it
    assert [r["w"] for r in ref] == pytest.approx([temporal_weight(t / 999, 0.3) for t in REFERENCE_TIMESTEPS])
    moved = [abs(a["w"] - b["w"]) for a, b in zip(ref, default)]
    assert sum(m > 1e-9 for m in moved) == 27 and max(moved) > 1e-3


def test_wrong_scheduler_name_refused():
    assert "unipc_reference" in SCHEDULERS
    check_settings(1, 32, 32, 50, "unipc_reference", "fp32", None)
    with pytest.raises(ValueError, match="unipc_reference"):
        check_settings(1, 32, 32, 50, "unipc_wan", "fp32", None)
    with pytest.raises(ValueError, match="choose one of"):
        make_scheduler("unipc_wan", 5.0)


def test_plot_schedule_takes_the_reference(tmp_path):
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from plot_schedule import main
    main(["--scheduler", "unipc_reference", "--out", str(tmp_path / "s.png")])
    rows = json.loads((tmp_path / "s.json").read_text())["0.3"]
    assert [r["timestep"] for r in rows] == [float(t) for t in REFERENCE_TIMESTEPS]
