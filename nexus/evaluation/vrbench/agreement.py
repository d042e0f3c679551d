"""Rank agreement (Kendall's tau-b, torchmetrics) between two sets of VR-Bench scores: two judges (paper App.
D.2, Qwen3-VL vs GPT-5.2) or a judge and human ratings (App. D.6, tau = 0.73 over the compared methods).

Each side is one or more sources, flattened to rows (run, case, dimension, score):
  a scores.json (or its run folder) from run.evaluate: one row per judged case, run = its name
  a CSV with a `score` column and `case` (or `id`) and optionally `run` and `dimension` columns, e.g. human
  ratings; a missing dimension is read from the case id (BBR_007 -> BBR)
Levels: case (key run+case), dimension (run+dimension, the mean of its cases), run (the mean of its dimensions,
as the overall score is). Only keys present on both sides are compared; scales may differ (ranks only).
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from statistics import mean

import torch
from torchmetrics.functional import kendall_rank_corrcoef

from nexus.evaluation.vrbench.cases import DIMENSIONS
from nexus.evaluation.vrbench.report import read_run

LEVELS = ("case", "dimension", "run")


def read_rows(path: str | Path) -> list[dict]:
    path = Path(path)
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            table = list(csv.DictReader(f))
        if not table or "score" not in table[0] or not {"case", "id"} & set(table[0]):
            raise ValueError(f"{path}: a score CSV needs the columns case (or id) and score; optional run, dimension")
        rows = []
        for i, r in enumerate(table, start=2):
            case = r.get("case") or r.get("id")
            dimension = r.get("dimension") or case.split("_")[0]
            if dimension not in DIMENSIONS:
                raise ValueError(f"{path}:{i}: no dimension for case {case!r}; add a dimension column "
                                 f"({', '.join(DIMENSIONS)})")
            try:
                score = float(r["score"])
            except ValueError:
                raise ValueError(f"{path}:{i}: score {r['score']!r} is not a number") from None
            rows.append({"run": r.get("run") or "", "case": case, "dimension": dimension, "score": score})
        return rows
    scores = read_run(path)
    return [{"run": scores.get("name", ""), "case": c, "dimension": r["dimension"], "score": r["score"]}
            for c, r in scores["cases"].items() if r["score"] is not None]     # a dropped case has no score


def by_level(rows: list[dict], level: str) -> dict[tuple, float]:
    if level == "case":
        groups = defaultdict(list)
        for r in rows:
            groups[(r["run"], r["case"])].append(r["score"])
        return {k: mean(v) for k, v in groups.items()}
    dims = by_level([{**r, "case": r["dimension"]} for r in rows], "case")   # (run, dimension) -> mean
    if level == "dimension":
        return dims
    runs = defaultdict(list)
    for (run, _), v in dims.items():
        runs[run].append(v)
    return {(run,): mean(v) for run, v in runs.items()}


def kendall(a: dict[tuple, float], b: dict[tuple, float]) -> dict:
    """tau-b and its two-sided p-value over the keys both sides hold; None where fewer than 2 or no ranking."""
    keys = sorted(set(a) & set(b))
    if len(keys) < 2:
        return {"n": len(keys), "tau": None, "p": None}
    x = torch.tensor([a[k] for k in keys], dtype=torch.float64)
    y = torch.tensor([b[k] for k in keys], dtype=torch.float64)
    if len(set(x.tolist())) < 2 or len(set(y.tolist())) < 2:   # a constant side has no ranking: tau undefined
        return {"n": len(keys), "tau": None, "p": None}
    tau, p = kendall_rank_corrcoef(x, y, variant="b", t_test=True)
    return {"n": len(keys), "tau": float(tau), "p": float(p)}


def agreement(a_sources: list, b_sources: list) -> dict[str, dict]:
    a = [r for s in a_sources for r in read_rows(s)]
    b = [r for s in b_sources for r in read_rows(s)]
    if {r["run"] for r in a} != {r["run"] for r in b} and (len(a_sources) == len(b_sources) == 1):
        # one source a side (e.g. a judge's run vs a human CSV without a run column): compare by case alone
        a, b = [{**r, "run": ""} for r in a], [{**r, "run": ""} for r in b]
    return {level: kendall(by_level(a, level), by_level(b, level)) for level in LEVELS}
