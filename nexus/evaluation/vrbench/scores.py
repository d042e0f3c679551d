"""VR-Bench scores (METHOD.md "VR-Bench", paper App. B).

case      sum(weight * [answer == Yes]) / sum(weight) over its questions; an unparsed answer (None) counts as No
layers    the same share within L1 = q1-q2 (perception), L2 = q3-q5 (relations), L3 = q6-q8 (causal/semantic)
dimension mean case score x 100 over the dimension's judged cases
category  mean of its dimensions' scores (HL-Phys = DRF, ETV, MMC; HL-Comm = CAR, CCR, PCR; Emb-Phys = BBR, CAC)
overall   mean of the eight dimension scores, not of the cases: METHOD.md ("category and overall scores are means
          above that", i.e. above the dimension level) and the paper's Tab. 2, which reports Overall beside the
          dimension and category columns; it keeps CCR's 29 cases from outweighing MMC's 24.
The layer columns are aggregated the same way (dimension mean, then category / overall means).
"""
from __future__ import annotations

from statistics import mean

from nexus.evaluation.vrbench.cases import CATEGORIES, DIMENSIONS, Case, Question

LAYERS = {"L1": ("q1", "q2"), "L2": ("q3", "q4", "q5"), "L3": ("q6", "q7", "q8")}
METRICS = ("score", *LAYERS)


def weighted_yes(questions: list[Question] | tuple[Question, ...], answers: dict) -> float | None:
    """Weighted share of Yes; None when there are no questions (a layer the case does not ask)."""
    total = sum(q.weight for q in questions)
    return sum(q.weight for q in questions if answers.get(q.id) == "Yes") / total if total else None


def case_scores(case: Case, answers: dict[str, str | None]) -> dict:
    out = {"dimension": case.dimension, "score": weighted_yes(case.questions, answers)}
    out.update({layer: weighted_yes([q for q in case.questions if q.id in ids], answers)
                for layer, ids in LAYERS.items()})
    out["unparsed"] = sum(answers.get(q.id) is None for q in case.questions)
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def aggregate(rows: dict[str, dict]) -> dict:
    """{case id: case_scores(...)} -> dimension (x100), category and overall tables, each {metric: value}."""
    dims = {}
    for code in DIMENSIONS:
        mine = [r for r in rows.values() if r["dimension"] == code]
        if mine:
            dims[code] = {m: None if (v := _mean(r[m] for r in mine)) is None else 100 * v for m in METRICS}
            dims[code]["cases"] = len(mine)
    over = lambda codes: {m: _mean(dims[c][m] for c in codes if c in dims) for m in METRICS}   # noqa: E731
    return {"dimensions": dims,
            "categories": {name: over(codes) for name, codes in CATEGORIES.items() if any(c in dims for c in codes)},
            "overall": over(DIMENSIONS),
            "unparsed": sum(r["unparsed"] for r in rows.values())}
