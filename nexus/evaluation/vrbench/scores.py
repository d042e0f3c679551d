"""VR-Bench scores (METHOD.md "VR-Bench", paper App. B).

case      sum(weight * [answer == Yes]) / sum(weight) over its questions; an unparsed answer (None) counts as No
layers    the same share within L1 = q1-q2 (perception), L2 = q3-q5 (relations), L3 = q6-q8 (causal/semantic)
dimension mean case score x 100 over the dimension's judged cases
category  mean of its dimensions' scores (HL-Phys = DRF, ETV, MMC; HL-Comm = CAR, CCR, PCR; Emb-Phys = BBR, CAC)
overall   mean of the eight dimension scores, not of the cases nor of the three categories. The reference code
          stops at the dimension (one summary per dimension script) and states no rule above it; the paper's Tab. 2
          reports the category and Overall columns beside the dimensions without a formula. We follow METHOD.md
          ("category and overall scores are means above that", i.e. of dimension scores): each dimension weighs
          the same, so CCR's 29 cases do not outweigh MMC's 24, and Emb-Phys (2 dimensions) does not count as much
          as HL-Phys (3). A score over fewer dimensions is flagged incomplete ("complete": false, "missing").
dropped   a case whose judge reply makes the reference evaluator raise (parse.Dropped) is left out of the means,
          as the reference's batch driver does; it is counted.
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


def case_scores(case: Case, answers: dict[str, str | None], digits: int | None = None) -> dict:
    """digits: round the case and layer scores as the reference does (4), or keep them exact (None)."""
    keep = (lambda v: v) if digits is None else (lambda v: None if v is None else round(v, digits))   # noqa: E731
    out = {"dimension": case.dimension, "score": keep(weighted_yes(case.questions, answers))}
    out.update({layer: keep(weighted_yes([q for q in case.questions if q.id in ids], answers))
                for layer, ids in LAYERS.items()})
    out["unparsed"] = sum(answers.get(q.id) is None for q in case.questions)
    return out


def dropped_scores(case: Case, reason: str) -> dict:
    """A case the reference leaves out of the averages (its judge reply made the reference evaluator raise)."""
    return {"dimension": case.dimension, **{m: None for m in METRICS}, "unparsed": 0, "dropped": reason}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def aggregate(rows: dict[str, dict], expected: dict[str, int] | None = None, digits: int | None = None) -> dict:
    """{case id: case_scores(...) or dropped_scores(...)} -> dimension (x100), category and overall tables, each
    {metric: value}, with completeness: a dimension is complete when every case of the case set (`expected`, by
    dimension) has been judged; a category or the overall score is complete when all its dimensions have a score.
    digits: the reference rounds the dimension mean (0-1 scale) to 4 digits, i.e. 2 on the 0-100 scale."""
    def percent(v):
        return None if v is None else 100 * v if digits is None else round(100 * round(v, digits), digits - 2)
    dims = {}
    for code in DIMENSIONS:
        mine = [r for r in rows.values() if r["dimension"] == code]
        scored = [r for r in mine if not r.get("dropped")]
        if mine:
            dims[code] = {m: percent(_mean(r[m] for r in scored)) for m in METRICS}
            dims[code].update(cases=len(scored), dropped=len(mine) - len(scored))
            if expected is not None:
                dims[code].update(expected=expected.get(code, 0), complete=len(mine) >= expected.get(code, 0))
    scored_dims = [c for c in DIMENSIONS if c in dims and dims[c]["score"] is not None]

    def over(codes):
        out = {m: _mean(dims[c][m] for c in codes if c in dims) for m in METRICS}
        return {**out, "complete": all(c in scored_dims for c in codes),
                "missing": [c for c in codes if c not in scored_dims]}
    partial = [c for c in dims if not dims[c].get("complete", True)]
    return {"dimensions": dims,
            "categories": {name: over(codes) for name, codes in CATEGORIES.items() if any(c in dims for c in codes)},
            "overall": over(DIMENSIONS),
            "complete": len(scored_dims) == len(DIMENSIONS) and not partial,
            "unparsed": sum(r["unparsed"] for r in rows.values()),
            "dropped": sum(bool(r.get("dropped")) for r in rows.values()),
            "nonreference": sum(bool(r.get("nonreference")) for r in rows.values())}
