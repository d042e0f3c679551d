"""Draw the UPFB hand-off schedule before spending GPU hours: w (Eq. 4) and sigma (Eq. 7) at every step.

  python tools/plot_schedule.py --gamma-w 0.2 0.3 0.5 --out schedule.png
  python tools/plot_schedule.py --gamma-w 0.3 --clock step --steps 50 --scheduler unipc --shift 5
  python tools/plot_schedule.py --scheduler unipc_reference   # the released model's timesteps
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402


def main(argv=None) -> None:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gamma-w", type=checks.finite_float, nargs="+", default=[0.3], help="one curve per value (> 0)")
    p.add_argument("--sigma-min", type=checks.nonnegative_float, default=0.35)
    p.add_argument("--sigma-max", type=checks.nonnegative_float, default=0.70)
    p.add_argument("--steps", type=checks.positive_int, default=50)
    p.add_argument("--scheduler", default="unipc", choices=checks.choices_of("nexus.inference.module", "SCHEDULERS"),
                   metavar="SCHEDULER",
                   help="%(choices)s; unipc_reference: the released model's (Wan FlowUniPC) timesteps")
    p.add_argument("--shift", type=checks.positive_float, default=5.0)
    p.add_argument("--clock", default="timestep", choices=checks.choices_of("nexus.upfb.schedule", "CLOCKS"),
                   metavar="CLOCK", help="%(choices)s")
    p.add_argument("--out", default="schedule.png", help="PNG path; a .json with the numbers is written beside it")
    a = p.parse_args(argv)
    for g in a.gamma_w:
        if not g > 0:
            raise checks.UserError(f"--gamma-w {g}: gamma_w={g} must be > 0 (the paper uses 0.2-0.5, default 0.3)")
    if a.sigma_min > a.sigma_max:
        raise checks.UserError(f"--sigma-min {a.sigma_min} > --sigma-max {a.sigma_max}: the band's lower end must not "
                               f"exceed its upper end")
    out = checks.output_file("--out", a.out)
    checks.output_file("--out", out.with_suffix(".json"))
    from nexus.upfb.solver import make_scheduler
    from nexus.upfb.schedule import schedule_table
    sched = make_scheduler(a.scheduler, a.shift)
    sched.set_timesteps(a.steps)
    tables = {g: schedule_table(sched.timesteps, g, a.sigma_min, a.sigma_max, a.clock) for g in a.gamma_w}

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_w, ax_s) = plt.subplots(1, 2, figsize=(11, 4))
    for g, rows in tables.items():
        steps = [r["step"] for r in rows]
        ax_w.plot(steps, [r["w"] for r in rows], label=f"gamma_w={g}")
        ax_s.plot(steps, [r["sigma"] for r in rows], label=f"gamma_w={g}")
        half = next((r["step"] for r in rows if r["w"] < 0.5), None)
        print(f"gamma_w={g}: w < 0.5 from step {half} of {a.steps} (the large generator leads from there)")
    ax_w.set(xlabel="sampling step", ylabel="w (small generator's share)", ylim=(-0.02, 1.02),
             title=f"Eq. 4, clock={a.clock}, {a.scheduler} shift {a.shift}")
    ax_s.set(xlabel="sampling step", ylabel="sigma (latent pixels)", title=f"Eq. 7, sigma in [{a.sigma_min}, {a.sigma_max}]")
    for ax in (ax_w, ax_s):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    out.with_suffix(".json").write_text(json.dumps({str(g): rows for g, rows in tables.items()}, indent=1))
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
