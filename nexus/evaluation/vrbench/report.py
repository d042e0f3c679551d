"""Tables and a radar chart over several VR-Bench runs (each a `scores.json` written by run.evaluate), laid out
like the paper's Tab. 2: the eight dimensions grouped by category, the category means, the overall score, then
the layer scores (L1-L3), the number of judged cases and of unparsed answers."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from nexus.data.video import atomic_write
from nexus.evaluation.vrbench.cases import CATEGORIES

COLUMNS = [col for category, codes in CATEGORIES.items() for col in (*codes, category)] + ["Overall", "L1", "L2",
                                                                                           "L3", "cases", "unparsed"]


def read_run(path: str | Path) -> dict:
    """A run folder (holding scores.json) or a scores.json file."""
    path = Path(path)
    file = path / "scores.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no scores.json (write one with `tools/vrbench.py evaluate ... --out {path}`)")
    return json.loads(file.read_text())


def row(scores: dict) -> dict:
    """One run -> {column: value}; a dimension without judged cases is None."""
    dims, cats = scores["dimensions"], scores["categories"]
    out = {code: dims.get(code, {}).get("score") for codes in CATEGORIES.values() for code in codes}
    out.update({name: cats.get(name, {}).get("score") for name in CATEGORIES})
    out.update({"Overall": scores["overall"]["score"], **{k: scores["overall"][k] for k in ("L1", "L2", "L3")},
                "cases": sum(d["cases"] for d in dims.values()), "unparsed": scores["unparsed"]})
    return out


def _cell(value) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def write_table(runs: dict[str, dict], prefix: str | Path) -> list[Path]:
    """{run name: scores} -> `<prefix>_table.md` and `<prefix>_table.csv`."""
    prefix = Path(prefix)
    rows = {name: row(scores) for name, scores in runs.items()}
    md = ["| run | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    md += [f"| {name} | " + " | ".join(_cell(r[c]) for c in COLUMNS) + " |" for name, r in rows.items()]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["run", *COLUMNS])
    writer.writerows([name, *("" if r[c] is None else r[c] for c in COLUMNS)] for name, r in rows.items())
    paths = [prefix.with_name(prefix.name + "_table.md"), prefix.with_name(prefix.name + "_table.csv")]
    for path, text in zip(paths, ("\n".join(md) + "\n", buf.getvalue())):
        with atomic_write(path) as f:
            f.write(text.encode())
    return paths


def radar(runs: dict[str, dict], path: str | Path) -> Path:
    """The eight dimension scores of each run on one polar chart (PNG); missing dimensions plot as 0."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    codes = [code for codes in CATEGORIES.values() for code in codes]
    angles = np.linspace(0, 2 * np.pi, len(codes), endpoint=False)
    fig, ax = plt.subplots(figsize=(6, 6), subplot_kw={"projection": "polar"})
    for name, scores in runs.items():
        values = [row(scores)[c] or 0.0 for c in codes]
        ax.plot(np.r_[angles, angles[:1]], values + values[:1], label=f"{name} ({_cell(scores['overall']['score'])})")
        ax.fill(np.r_[angles, angles[:1]], values + values[:1], alpha=0.08)
    ax.set_xticks(angles, codes)
    ax.set_ylim(0, 100)
    ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.12), fontsize=8)
    ax.set_title("VR-Bench (overall in brackets)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    path = Path(path)
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    return path


def report(run_paths: list[str | Path], out: str | Path, names: list[str] | None = None) -> list[Path]:
    """Compare runs: `<out>/vrbench_table.md`, `.csv` and `<out>/vrbench_radar.png`."""
    if names and len(names) != len(run_paths):
        raise ValueError(f"{len(names)} names for {len(run_paths)} runs; give one name per run")
    runs = {}
    for i, p in enumerate(run_paths):
        scores = read_run(p)
        runs[names[i] if names else scores.get("name") or Path(p).name] = scores
    if len(runs) != len(run_paths):
        raise ValueError("two runs have the same name; give --names")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [*write_table(runs, out / "vrbench"), radar(runs, out / "vrbench_radar.png")]
