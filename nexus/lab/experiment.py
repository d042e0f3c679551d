"""The shapes lab's experiment: the strategies compared, the judging of a sample folder, and the report.

Measures, per strategy and seed (then mean and spread over the seeds):
  reasoning_accuracy  reasoning prompts whose paraphrased attribute is read back right (the knowledge question)
  reasoning_score     the weighted question score on reasoning prompts
  plain_score         the weighted question score on plain prompts
  plain_exact         plain prompts with every question right
  fidelity            nexus.lab.judge.fidelity, mean over all samples
  dup_mix_rate        samples with no single object (none, or duplicated) or with a mixed colour
"""
from __future__ import annotations

import json
from pathlib import Path
from statistics import mean, pstdev

import numpy as np

from nexus.lab.judge import fidelity, questions, read, score
from nexus.lab.world import Scene

METRICS = ("reasoning_accuracy", "reasoning_score", "plain_score", "plain_exact", "fidelity", "dup_mix_rate")


def configs(sample_steps: int) -> list[tuple[str, list[str], bool]]:
    """(name, tools/sample.py overrides, part of the sweep): the paper's strategies, the small generator before
    stage 1, then UPFB's RMS modes and a gamma_w sweep (one seed)."""
    upfb = ["bridge.strategy=upfb"]
    return [("small_plain", ["bridge.strategy=small_only", "small.export=null"], False),
            ("small_only", ["bridge.strategy=small_only"], False),
            ("large_only", ["bridge.strategy=large_only"], False),
            ("direct_add", ["bridge.strategy=direct_add"], False),
            ("switch", ["bridge.strategy=switch", f"bridge.switch_step={sample_steps // 2}"], False),
            ("upfb", upfb, False),
            ("upfb_rms_paper", [*upfb, "bridge.rms=paper"], True),
            ("upfb_rms_off", [*upfb, "bridge.rms=off"], True),
            *[(f"upfb_gamma_w{g}", [*upfb, f"bridge.gamma_w={g}"], True) for g in (0.1, 0.2, 0.4, 0.5)]]   # no "=": Hydra


def first_frame(path: Path) -> np.ndarray:
    from nexus.data.video import decode_mp4
    return np.asarray(decode_mp4(Path(path).read_bytes(), num_frames=1))[0]


def judge_image(img: np.ndarray, row: dict) -> dict:
    scene = Scene(**row["scene"])
    r = read(img)
    answers = questions(r, scene)
    return {"id": row["id"], "kind": row["kind"], "attribute": row["attribute"], "answers": answers,
            "score": score(answers), "fidelity": fidelity(img), "count": r["count"], "colour": r["colour"]}


def summarise(samples: list[dict]) -> dict:
    plain = [s for s in samples if s["kind"] == "plain"]
    reasoning = [s for s in samples if s["kind"] == "reasoning"]
    avg = lambda xs: float(mean(xs)) if xs else None    # noqa: E731
    out = {"reasoning_accuracy": avg([s["answers"][s["attribute"]] for s in reasoning]),
           "reasoning_score": avg([s["score"] for s in reasoning]), "plain_score": avg([s["score"] for s in plain]),
           "plain_exact": avg([all(s["answers"].values()) for s in plain]),
           "fidelity": avg([s["fidelity"] for s in samples]),
           "dup_mix_rate": avg([s["count"] != 1 or s["colour"] == "mixed" for s in samples]),
           "samples": len(samples)}
    for attribute in ("colour", "shape", "position", "background"):
        out[f"reasoning_{attribute}"] = avg([s["answers"][attribute] for s in reasoning if s["attribute"] == attribute])
    return out


def judge_folder(folder: Path, prompts: Path) -> dict:
    """Every test prompt's sample in `folder` (tools/sample.py's <id>.mp4) -> summary + per-sample records."""
    from nexus.lab.data import read_jsonl
    rows = read_jsonl(prompts)
    missing = [r["id"] for r in rows if not (Path(folder) / f"{r['id']}.mp4").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: no sample for {missing[:5]} ({len(missing)} missing); rerun the lab")
    samples = [judge_image(first_frame(Path(folder) / f"{r['id']}.mp4"), r) for r in rows]
    return {**summarise(samples), "per_sample": samples}


def ground_truth(prompts: Path, size: int) -> dict:
    """The judge on the test scenes' own renders after the same mp4 round trip as samples: the ceiling."""
    from nexus.data.video import decode_mp4, encode_mp4
    from nexus.lab.data import read_jsonl
    from nexus.lab.world import render
    rows = read_jsonl(prompts)
    imgs = [np.asarray(decode_mp4(encode_mp4(render(Scene(**r["scene"]), size)[None], 16)))[0] for r in rows]
    return summarise([judge_image(img, r) for img, r in zip(imgs, rows)])


def aggregate(results: dict) -> dict:
    """{config: {seed: summary}} -> {config: {metric: {"mean", "std", "seeds"}}}."""
    out = {}
    for name, by_seed in results.items():
        out[name] = {}
        for m in [k for k in next(iter(by_seed.values())) if k not in ("per_sample", "samples")]:
            values = [s[m] for s in by_seed.values() if s[m] is not None]
            out[name][m] = {"mean": mean(values) if values else None, "std": pstdev(values) if len(values) > 1 else 0.0,
                            "seeds": len(values)}
    return out


def _cell(m: dict) -> str:
    if m["mean"] is None:
        return "-"
    return f"{100 * m['mean']:.1f}" + (f" ± {100 * m['std']:.1f}" if m["seeds"] > 1 else "")


def report(results: dict, records: dict, out: Path, logger: str, log=print) -> dict:
    """lab.md, lab.json, lab.png under `out`; a W&B run when logger=wandb."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = aggregate(results)
    seeds = max(m["seeds"] for row in table.values() for m in row.values())
    lines = [f"| strategy | {' | '.join(METRICS)} |", "|---" * (len(METRICS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(_cell(row[m]) for m in METRICS) + " |" for name, row in table.items()]
    notes = [f"Percentages; {seeds} seed{'s' * (seeds > 1)}" + (": mean ± spread (population std)" if seeds > 1 else
                                                                "")]
    md = "\n".join(["# Shapes lab", "", *lines, "", *notes, "", "## Stages", "",
                    *[f"- {k}: {json.dumps((v or {}).get('info'), default=str)[:400]}" for k, v in records.items()]])
    (out / "lab.md").write_text(md + "\n")
    (out / "lab.json").write_text(json.dumps({"table": table, "stages": records}, indent=1, default=str))
    plot(table, out / "lab.png")
    if logger == "wandb":
        import wandb
        run = wandb.init(project="nexus", name="shapes-lab", dir=str(out), job_type="lab-report")
        run.log({"lab/table": wandb.Table(columns=["strategy", *METRICS],
                                          data=[[n, *(r[m]["mean"] for m in METRICS)] for n, r in table.items()]),
                 "lab/plot": wandb.Image(str(out / "lab.png"))})
        run.finish()
    log(md)
    return {"table": str(out / "lab.md"), "json": str(out / "lab.json"), "plot": str(out / "lab.png")}


def plot(table: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = ("reasoning_accuracy", "plain_score", "fidelity", "dup_mix_rate")
    names = list(table)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, len(names) * 0.9), 4))
    for k, m in enumerate(shown):
        means = [100 * (table[n][m]["mean"] or 0) for n in names]
        stds = [100 * table[n][m]["std"] for n in names]
        ax.bar(x + (k - 1.5) * 0.2, means, 0.2, yerr=stds, label=m, capsize=2)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title("Shapes lab: strategies on held-out prompts")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
