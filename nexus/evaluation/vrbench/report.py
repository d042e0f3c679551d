"""Tables and a radar chart over several VR-Bench runs (each a `scores.json` written by run.evaluate), laid out
like the paper's Tab. 2: the eight dimensions grouped by category, the category means, the overall score, then
the layer scores (L1-L3), the cases scored, dropped (the reference leaves them out), the unparsed answers, the
replies read differently from the reference (lenient protocol), the protocol, the judge and whether the run
covers the whole case set."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from nexus.data.video import atomic_write
from nexus.evaluation.vrbench.cases import CATEGORIES

SCORES = [col for category, codes in CATEGORIES.items() for col in (*codes, category)] + ["Overall", "L1", "L2", "L3"]
COLUMNS = SCORES + ["cases", "dropped", "unparsed", "nonreference", "protocol", "judge", "complete"]
CODES = [code for codes in CATEGORIES.values() for code in codes]


SCORES_EXPECTED = "give a run folder of tools/vrbench.py evaluate (holding scores.json) or that scores.json"


def read_run(path: str | Path, key: str = "run") -> dict:
    """A run folder (holding scores.json) or a scores.json file; key: the argument that named it, for messages."""
    from nexus.checks import UserError, json_file, named
    path = Path(path)
    file = path / "scores.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no scores.json (write one with `tools/vrbench.py evaluate ... --out {path}`)")
    scores = json_file(key, file, SCORES_EXPECTED)
    if not isinstance(scores, dict) or not isinstance(scores.get("cases"), dict):
        raise UserError(f"{named(key, file)}: JSON, but not VR-Bench scores (no 'cases'); {SCORES_EXPECTED}")
    return scores


def check_scores_input(key: str, path: str | Path) -> None:
    """Before any work: a score CSV reads as text, a scores.json (or run folder's) as VR-Bench scores."""
    from nexus.checks import text_file
    path = Path(path)
    if path.suffix == ".csv":
        if path.exists():
            text_file(key, path, "give a score CSV with the columns case (or id) and score")
    elif (path / "scores.json" if path.is_dir() else path).is_file():
        read_run(path, key)


def protocol_label(scores: dict) -> str:
    """reference, lenient or prob, "+ changes" when settings differ from the reference; runs written before the
    protocols existed say so."""
    label = scores.get("protocol", "unrecorded (before protocols)")
    n = len(scores.get("deviations") or [])
    return f"{label} + {n} change{'s' * (n > 1)}" if n else label


def row(scores: dict) -> tuple[dict, dict]:
    """One run -> {column: value} and {column: why the value is incomplete}; a dimension not judged is None."""
    dims, cats, overall = scores["dimensions"], scores["categories"], scores["overall"]
    out = {code: dims.get(code, {}).get("score") for code in CODES}
    out.update({name: cats.get(name, {}).get("score") for name in CATEGORIES})
    out.update({"Overall": overall["score"], **{k: overall[k] for k in ("L1", "L2", "L3")},
                "cases": sum(d["cases"] for d in dims.values()), "dropped": scores.get("dropped", 0),
                "unparsed": scores["unparsed"], "nonreference": scores.get("nonreference", 0),
                "protocol": protocol_label(scores),
                "judge": (scores.get("judge_info") or {}).get("name") or str(scores.get("judge", "")).split("|")[0],
                "complete": scores.get("complete", False)})
    why = {code: f"{d['cases'] + d['dropped']} of {d['expected']} cases judged" for code, d in dims.items()
           if d.get("expected") and not d.get("complete", True)}
    why.update({name: "not judged: " + ", ".join(c["missing"]) for name, c in [*cats.items(), ("Overall", overall)]
                if c.get("missing")})
    return out, why


def _cell(value) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def write_table(runs: dict[str, dict], prefix: str | Path) -> list[Path]:
    """{run name: scores} -> `<prefix>_table.md` and `<prefix>_table.csv`. In the Markdown table a value marked *
    covers fewer cases or dimensions than the benchmark has; the notes under the table say which."""
    prefix = Path(prefix)
    rows = {name: row(scores) for name, scores in runs.items()}
    md = ["| run | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    md += [f"| {name} | " + " | ".join(_cell(r[c]) + ("*" if c in why else "") for c in COLUMNS) + " |"
           for name, (r, why) in rows.items()]
    notes = [f"- {name}, {c}: {text}" for name, (_, why) in rows.items() for c, text in why.items()]
    md += ["", "\\* incomplete:", *notes] if notes else []
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["run", *COLUMNS])
    writer.writerows([name, *("" if r[c] is None else r[c] for c in COLUMNS)] for name, (r, _) in rows.items())
    paths = [prefix.with_name(prefix.name + "_table.md"), prefix.with_name(prefix.name + "_table.csv")]
    for path, text in zip(paths, ("\n".join(md) + "\n", buf.getvalue())):
        with atomic_write(path) as f:
            f.write(text.encode())
    return paths


def radar(runs: dict[str, dict], path: str | Path) -> Path:
    """The eight dimension scores of each run on one polar chart (PNG). A dimension a run did not judge has no
    point and breaks its line (never a 0); an axis no run judged is labelled "not judged"."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    angles = np.linspace(0, 2 * np.pi, len(CODES), endpoint=False)
    fig, ax = plt.subplots(figsize=(6, 6), subplot_kw={"projection": "polar"})
    judged = set()
    for name, scores in runs.items():
        r, why = row(scores)
        values = np.array([np.nan if r[c] is None else r[c] for c in CODES], dtype=float)
        judged |= {c for c in CODES if r[c] is not None}
        label = f"{name} ({_cell(r['Overall'])}{'*, ' + why['Overall'] if 'Overall' in why else ''})"
        line, = ax.plot(np.r_[angles, angles[:1]], np.r_[values, values[:1]], marker="o", ms=3, label=label)
        if not np.isnan(values).any():
            ax.fill(angles, values, alpha=0.08, color=line.get_color())
    ax.set_xticks(angles, [c if c in judged else f"{c}\n(not judged)" for c in CODES])
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
        scores = read_run(p, "runs")
        runs[names[i] if names else scores.get("name") or Path(p).name] = scores
    if len(runs) != len(run_paths):
        raise ValueError("two runs have the same name; give --names")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [*write_table(runs, out / "vrbench"), radar(runs, out / "vrbench_radar.png")]
