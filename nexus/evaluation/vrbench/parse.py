"""The judge's reply -> {question id: "Yes" | "No" | None}. None means unparsed; it scores as No and is counted.

The reference reply is `{"answers": {"q1": {"answer": "Yes", "reason": "..."}, ...}}`. Real replies wrap it in
code fences, add text before or after, use single quotes or trailing commas, or answer "yes" / "YES." / true;
when no JSON object can be read at all, a per-question pattern (`"q3": ... "answer": "no"`, `q3: Yes`) is tried.
"""
from __future__ import annotations

import ast
import json
import re

FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)


def normalise(value) -> str | None:
    """An answer value -> "Yes" / "No" / None: {"answer": ...}, booleans, "yes", "YES.", "No, because ..."."""
    if isinstance(value, dict):
        value = next((v for k, v in value.items() if str(k).lower() == "answer"), None)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if not isinstance(value, str):
        return None
    word = re.match(r"\W*([a-z]+)", value.lower())
    return {"yes": "Yes", "no": "No"}.get(word.group(1)) if word else None


def _objects(text: str):
    """Every balanced {...} substring, outermost first (braces inside strings are skipped)."""
    for start in [i for i, c in enumerate(text) if c == "{"]:
        depth, quote, escaped = 0, None, False
        for end in range(start, len(text)):
            c = text[end]
            if quote:
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == quote:
                    quote = None
                continue
            if c in "\"'":
                quote = c
            depth += (c == "{") - (c == "}")
            if depth == 0:
                yield text[start:end + 1]
                break


def _load(candidate: str):
    """JSON, then JSON without trailing commas, then a Python literal (single quotes, True/False)."""
    fixed = re.sub(r",\s*([}\]])", r"\1", candidate)
    for attempt in (lambda: json.loads(candidate), lambda: json.loads(fixed),
                    lambda: ast.literal_eval(re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", fixed)))):
        try:
            value = attempt()
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _from_object(obj: dict, qids: list[str]) -> dict[str, str | None]:
    answers = next((v for k, v in obj.items() if str(k).lower() == "answers" and isinstance(v, dict)), obj)
    lowered = {str(k).strip().lower(): v for k, v in answers.items()}
    return {q: normalise(lowered.get(q)) for q in qids}


def _by_pattern(text: str, qids: list[str]) -> dict[str, str | None]:
    out = {}
    for q in qids:   # the first yes/no after the question id, within the same entry
        m = re.search(rf"\b{q}\b[\"']?\s*[:=\-]\s*[^\n]*?\b(yes|no)\b", text, re.I)
        out[q] = m.group(1).capitalize() if m else None
    return out


def parse_answers(text: str, qids: list[str]) -> dict[str, str | None]:
    """Answers for `qids` (lower-case "q1".."q8"); the object answering most questions wins."""
    body = "\n".join(FENCE.findall(text)) or text
    best: dict[str, str | None] = {q: None for q in qids}
    for candidate in _objects(body):
        obj = _load(candidate)
        if obj is not None:
            found = _from_object(obj, qids)
            if sum(v is not None for v in found.values()) > sum(v is not None for v in best.values()):
                best = found
    if all(v is None for v in best.values()):
        best = _by_pattern(body, qids)
    return best
