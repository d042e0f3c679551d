"""The VR-Bench reference protocol as its authors run it (Lumos-Custom `vr_bench_eval`, source in
`data/vrbench/prompts/protocol.json`): the per-dimension judge prompt, the frame indices, the case set and the
generation settings. The prompt wording is benchmark data, like the case files: `data/vrbench/prompts/<DIM>.txt`
(string.Template placeholders), filled from the case's fields exactly as the reference fills its f-string.

Known differences that remain (docs/evaluation.md, "VR-Bench"): frames are decoded with PyAV (the reference: decord), the
judge runs with the transformers default attention (the reference: flash_attention_2), and the case loader
strips surrounding whitespace from `prompt_en` and question texts (the public files have none).
"""
from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from string import Template

import numpy as np

from nexus.evaluation.vrbench.cases import DIMENSIONS, Case

PROMPTS = Path(__file__).resolve().parents[3] / "data" / "vrbench" / "prompts"
PROTOCOLS = ("reference", "lenient")


@cache
def spec() -> dict:
    """protocol.json plus the eight templates, and a version hash over all of them (cached judge answers depend
    on it)."""
    missing = [d for d in DIMENSIONS if not (PROMPTS / f"{d}.txt").is_file()]
    if missing or not (PROMPTS / "protocol.json").is_file():
        raise FileNotFoundError(f"{PROMPTS}: the VR-Bench prompt templates are incomplete (missing "
                                f"{missing or ['protocol.json']}); restore data/vrbench/prompts from the repository")
    raw = (PROMPTS / "protocol.json").read_text()
    texts = {d: (PROMPTS / f"{d}.txt").read_text() for d in DIMENSIONS}
    version = hashlib.sha256((raw + "".join(texts[d] for d in DIMENSIONS)).encode()).hexdigest()[:8]
    return {**json.loads(raw), "templates": {d: Template(t) for d, t in texts.items()}, "version": version}


def reference_prompt(case: Case) -> str:
    """The text the reference evaluator of the case's dimension sends with the frames."""
    s = spec()
    questions = s["question_separator"].join(
        Template(s["question_line"]).substitute(number=i, question=q.text, weight=q.weight_text or q.weight)
        for i, q in enumerate(case.questions, start=1))
    answers = s["answer_separator"].join(Template(s["answer_line"]).substitute(id=q.id) for q in case.questions)
    instruction = s["default_instruction"][case.dimension] if case.instruction is None else case.instruction
    return s["templates"][case.dimension].substitute(
        category=case.category or DIMENSIONS[case.dimension], id=case.raw_id or case.id, prompt=case.prompt,
        description=case.description, evaluation_description=case.evaluation_description, questions=questions,
        instruction=instruction, answers=answers).strip()


def frame_indices(total: int, frames: int) -> list[int]:
    """`frames` indices spaced uniformly over `total` frames, rounded down (all frames when the video is shorter)."""
    return np.linspace(0, total - 1, min(frames, total), dtype=int).tolist()


def reference_case_set(cases: list[Case]) -> tuple[list[Case], list[str]]:
    """The reference reads each file into {id: case}, so a repeated id keeps its last case (the public data has
    ETV_022 twice: 215 cases are judged). -> (cases in file order, one note per id left out)."""
    last = {c.raw_id or c.id: c for c in cases}
    kept = [c for c in cases if last[c.raw_id or c.id] is c]
    notes = [f"{c.id}: the id {c.raw_id} appears again later in its file; the reference keeps the last case with an "
             f"id ({last[c.raw_id].id} here), so this one is not judged" for c in cases if last[c.raw_id or c.id] is not c]
    return kept, notes


def deviations(mode: str, frames: int, max_new_tokens: int, dtype: str) -> list[str]:
    """Settings of this run that differ from the reference protocol (empty: the reference's own)."""
    s = spec()
    out = [] if mode == "generate" else [f"mode={mode} (reference: one generated JSON reply per case)"]
    out += [f"frames={frames} (reference: {s['frames']})"] * (frames != s["frames"])
    if mode == "generate" and max_new_tokens != s["generation"]["max_new_tokens"]:
        out.append(f"max_new_tokens={max_new_tokens} (reference: {s['generation']['max_new_tokens']})")
    out += [f"dtype={dtype} (reference: {s['dtype']})"] * (dtype != s["dtype"])
    return out
