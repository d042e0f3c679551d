"""The public VR-Bench JSON files -> validated cases. A bad file or case is reported (file, case, field, fix)
and skipped; the rest are returned. Ids follow `nexus.inference.prompts` (the second ETV_022 is ETV_022_2), so
the videos `tools/sample.py` writes for the same files are found under the same names."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from nexus.inference.prompts import unique_names, vrbench_entries, vrbench_files

DIMENSIONS = {   # code -> the `category` name in the public files (paper App. B)
    "DRF": "Dynamic Reference Frame", "ETV": "Energy Transfer Visualization", "MMC": "Material Memory Consistency",
    "CAR": "Conceptional Action Reasoning", "CCR": "Cultural Commonsense Reasoning",
    "PCR": "Preventive Causal Reasoning",
    "BBR": "Biological Behavior Reasoning", "CAC": "Concurrent Action Coordination",
}
CATEGORIES = {"HL-Phys": ("DRF", "ETV", "MMC"), "HL-Comm": ("CAR", "CCR", "PCR"), "Emb-Phys": ("BBR", "CAC")}
BY_NAME = {name.lower(): code for code, name in DIMENSIONS.items()}
QID = re.compile(r"q([1-8])")


@dataclass(frozen=True)
class Question:
    id: str          # q1 .. q8; the number sets the layer (scores.LAYERS)
    text: str
    weight: float
    importance: float | None = None     # importance_score: in the public files, unused by the reference scoring
    weight_text: str = ""   # the weight as the file writes it (2.0 or 2): the reference prompt prints it so


@dataclass(frozen=True)
class Case:
    id: str
    dimension: str   # DRF, ETV, ... (from `category`)
    prompt: str
    questions: tuple[Question, ...]
    instruction: str | None = None      # evaluation.overall_instruction; None: absent (the prompt's default)
    category: str = ""      # the file's `category`, as written (the reference prompt names it)
    description: str = ""   # what the case tests
    evaluation_description: str = ""    # evaluation.evaluation_description
    difficulty: str = ""
    scoring_method: str = ""            # evaluation.scoring_method (weighted_average where given)
    raw_id: str = ""        # the id in the file (ETV_022 twice: the second case's id is ETV_022_2)


class CaseError(ValueError):
    """One case is malformed; the message names file, case and field."""


def _field(entry: dict, path: str, where: str):
    value = entry
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise CaseError(f"{where}: missing field '{path}'")
        value = value[key]
    return value


def _text(entry: dict, path: str, where: str) -> str:
    value = _field(entry, path, where)
    if not isinstance(value, str) or not value.strip():
        raise CaseError(f"{where}: field '{path}' must be a non-empty string, got {value!r}")
    return value.strip()


def _question(q, i: int, where: str) -> Question:
    at = f"evaluation.evaluation_questions[{i}]"
    if not isinstance(q, dict):
        raise CaseError(f"{where}: field '{at}' must be an object with id, question, weight")
    qid = _text(q, "id", f"{where} {at}")
    if not QID.fullmatch(qid):
        raise CaseError(f"{where}: field '{at}.id' must be q1 .. q8 (it sets the question's layer), got {qid!r}")
    weight = _field(q, "weight", f"{where} {at}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise CaseError(f"{where}: field '{at}.weight' must be a positive number, got {weight!r}")
    importance = q.get("importance_score")
    return Question(qid, _text(q, "question", f"{where} {at}"), float(weight),
                    float(importance) if isinstance(importance, (int, float)) and not isinstance(importance, bool) else None,
                    str(weight))


def parse_case(entry, case_id: str, where: str) -> Case:
    """One raw entry -> Case, or CaseError naming the field that is missing or wrong."""
    if not isinstance(entry, dict):
        raise CaseError(f"{where}: a case must be a JSON object, got {type(entry).__name__}")
    category = _text(entry, "category", where)
    dimension = BY_NAME.get(category.lower(), category if category in DIMENSIONS else None)
    if dimension is None:
        raise CaseError(f"{where}: field 'category' is {category!r}; expected one of {', '.join(DIMENSIONS.values())}")
    raw = _field(entry, "evaluation.evaluation_questions", where)
    if not isinstance(raw, list) or not raw:
        raise CaseError(f"{where}: field 'evaluation.evaluation_questions' must be a non-empty list")
    questions = tuple(_question(q, i, where) for i, q in enumerate(raw))
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise CaseError(f"{where}: field 'evaluation.evaluation_questions' repeats a question id: {ids}")
    ev = entry.get("evaluation", {})

    def optional(d: dict, key: str) -> str:
        v = d.get(key, "")
        return v if isinstance(v, str) else str(v)     # as the reference's f-string prints it
    return Case(case_id, dimension, _text(entry, "prompt_en", where), questions,
                optional(ev, "overall_instruction") if "overall_instruction" in ev else None,
                category, optional(entry, "description"), optional(ev, "evaluation_description"),
                optional(entry, "difficulty"), optional(ev, "scoring_method"),
                entry.get("id") if isinstance(entry.get("id"), str) else case_id)


def load_cases(path: str | Path) -> tuple[list[Case], list[str]]:
    """A VR-Bench .json file or folder -> (valid cases in file order, one message per skipped file or case)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"cases={path}: no such file or folder (the public VR-Bench JSON files, "
                                f"e.g. data/vrbench)")
    entries, problems = [], []
    for f in vrbench_files(path):
        try:
            entries += [(f, i, e) for i, e in enumerate(vrbench_entries(json.loads(f.read_text()), f))]
        except (ValueError, OSError) as e:   # JSONDecodeError is a ValueError
            problems.append(f"{f}: skipped, not readable as VR-Bench JSON ({e})")
    raw_ids = [e.get("id") if isinstance(e, dict) and isinstance(e.get("id"), str) else f"#{i}"
               for _, i, e in entries]
    cases = []
    for (f, i, entry), case_id in zip(entries, unique_names(raw_ids)):
        where = f"{f}: case {case_id}" if not case_id.startswith("#") else f"{f}: case #{i} (no 'id')"
        try:
            if case_id.startswith("#"):
                raise CaseError(f"{where}: missing field 'id' (a string such as 'DRF_001')")
            cases.append(parse_case(entry, case_id, where))
        except CaseError as e:
            problems.append(f"{e}; the case is skipped (fix the file to include it)")
    return cases, problems
