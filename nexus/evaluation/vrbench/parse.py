"""The judge's reply -> {question id: "Yes" | "No" | None}, under one of two protocols. None means the answer
could not be read; it scores as No and is counted as unparsed.

reference  the reference evaluators' reading, rule for rule (Lumos-Custom `vr_bench_eval/evaluators`):
           `json.loads` of the reply, else of the span from its first `{` to its last `}`; the object must hold
           "answers"; otherwise every answer is Unknown (= No). DRF's evaluator asks that "answers" be an object,
           tries a nested-object regex before the span, and then reads each question by four patterns and by
           the first 60 characters of its text. An answer counts as Yes only when it is exactly "yes" in any
           case (DRF: after str() and strip()), so "Yes." or true count as No. A reply on which the reference
           raises (an answer that is not an object, an answer value that is not a string, "answers" not an
           object, a bare JSON number) drops the case from the averages: `Dropped`.
lenient    for judges that do not keep to the JSON format: code fences, text around the object, single quotes,
           trailing commas, truncation, `qN: Yes` lines, "Yes." / "yes, because" / true. Where the reference has
           no answer, it reads on; it also avoids three traps of a naive reading: an echoed "Yes or No"
           placeholder is no answer (not Yes); in a cut-off reply the answer is read from the "answer" field of
           that question's entry, not from a "no" inside a reason written before it; of several objects, the one
           answering the most questions wins and a tie goes to the later one (a final answer after a draft).
"""
from __future__ import annotations

import ast
import json
import re

from nexus.evaluation.vrbench.cases import Case

FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)
PLACEHOLDER = re.compile(r"\W*(yes|no)\W*(or|/|\|)\W*(yes|no)\b", re.I)
UNREAD = object()   # json.loads failed (None is a valid reading: the reply `null`)


class Dropped(ValueError):
    """The reference evaluator raises on this reply, and its batch driver leaves the case out of the averages."""


# ---- reference ---------------------------------------------------------------------------------------------

def _answers_in(parsed, drf: bool) -> bool:
    """`"answers" in parsed` (DRF: `and isinstance(parsed["answers"], dict)`) with the reference's failures."""
    if isinstance(parsed, dict):
        return "answers" in parsed and (not drf or isinstance(parsed["answers"], dict))
    if isinstance(parsed, (list, str)):
        if "answers" in parsed:   # a list holding, or a string containing, "answers": parsed["answers"] raises
            raise Dropped(f"the reply is a JSON {type(parsed).__name__} that contains 'answers', not an object")
        return False
    if drf:   # `in` on a number, true/false or null raises TypeError, which DRF's evaluator does not catch
        raise Dropped(f"the reply is a bare JSON {json.dumps(parsed)}")
    return False   # the other seven catch every exception here


def _loads(text: str, drf: bool):
    """json.loads; UNREAD where the reference catches the failure (DRF catches only JSONDecodeError)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return UNREAD
    except (ValueError, RecursionError) as e:
        if drf:
            raise Dropped(f"json.loads raised {type(e).__name__}") from None
        return UNREAD


def _reference_object(raw: str, drf: bool):
    """The parsed reply holding "answers", or None (the reference then answers Unknown, or DRF reads patterns)."""
    candidates = [raw]
    if drf:
        nested = re.search(r"\{[^{}]*\{.*\}[^{}]*\}", raw, re.DOTALL)
        candidates += [nested.group(0)] if nested else []
    start, end = raw.find("{"), raw.rfind("}")
    if start != -1 and end != -1 and (end > start or not drf):
        candidates.append(raw[start:end + 1])
    for text in candidates:
        parsed = _loads(text, drf)
        if parsed is not UNREAD and _answers_in(parsed, drf):
            return parsed
    return None


def _drf_patterns(raw: str, case: Case) -> dict:
    """DRF's last resort: per question, four patterns, then the first 60 characters of the question's text."""
    answers = {}
    for q in case.questions:
        found = "Unknown"
        for pattern in (rf'"{q.id}"\s*:\s*{{\s*"answer"\s*:\s*"([^"]*)"', rf'"{q.id}"\s*:\s*"([^"]*)"',
                        rf"{q.id}\s*:\s*([^\s,\.]+)", rf"question\s*{q.id[1:]}\s*:\s*([^\s,\.]+)"):
            m = re.search(pattern, raw, re.IGNORECASE)
            if m and m.group(1).strip().strip("\"'").lower() in ("yes", "no"):
                found = m.group(1).strip().strip("\"'").capitalize()
                break
        else:
            m = re.search(re.escape(q.text[:60]) + r".*?\b(Yes|No)\b", raw, re.IGNORECASE | re.DOTALL)
            found = m.group(1).capitalize() if m else found
        answers[q.id] = {"answer": found}
    return answers


def reference_answers(raw: str, case: Case) -> dict[str, str | None]:
    """The reference reading of one reply (see the module docstring); raises Dropped."""
    raw, drf = raw.strip(), case.dimension == "DRF"      # the reference strips the decoded reply
    parsed = _reference_object(raw, drf)
    answers = parsed["answers"] if parsed is not None else _drf_patterns(raw, case) if drf else {}
    out = {}
    for q in case.questions:
        if not isinstance(answers, dict):
            raise Dropped(f"'answers' is a JSON {type(answers).__name__}, not an object")
        entry = answers.get(q.id, {})
        if not isinstance(entry, dict):
            raise Dropped(f"the answer to {q.id} is {json.dumps(entry)[:40]}, not an object with an 'answer' field")
        value = entry.get("answer", "Unknown")
        if not drf and not isinstance(value, str):
            raise Dropped(f"the answer to {q.id} is {json.dumps(value)[:40]}, not a string")
        word = (str(value).strip() if drf else value).lower()
        out[q.id] = "Yes" if word == "yes" else "No" if word == "no" else None
    return out


# ---- lenient -----------------------------------------------------------------------------------------------

def normalise(value) -> str | None:
    """An answer value -> "Yes" / "No" / None: {"answer": ...}, booleans, "yes", "YES.", "No, because ..."; an
    echoed "Yes or No" is None."""
    if isinstance(value, dict):
        value = next((v for k, v in value.items() if str(k).lower() == "answer"), None)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if not isinstance(value, str) or PLACEHOLDER.match(value):
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
    """Per question, within its own entry (from its id to the next question id): the "answer" field, else a
    yes/no written right after the id (`q3: Yes`)."""
    marks = sorted((m.start(), m.end(), m.group(1).lower()) for m in re.finditer(r"\b(q[1-9])\b", text, re.I))
    out = {q: None for q in qids}
    for i, (_, end, q) in enumerate(marks):
        if q not in out or out[q] is not None:
            continue
        entry = text[end:marks[i + 1][0] if i + 1 < len(marks) else len(text)]
        field = re.search(r"answer[\"']?\s*[:=]\s*[\"']?\s*(yes|no)\b(?!\s*(?:or|/|\|)\s*(?:yes|no))", entry, re.I)
        direct = re.match(r"[\"']?\s*[:=\-]\s*[\"']?\s*(yes|no)\b(?!\s*(?:or|/|\|)\s*(?:yes|no))", entry, re.I)
        if field or direct:
            out[q] = (field or direct).group(1).capitalize()
    return out


def lenient_answers(text: str, qids: list[str]) -> dict[str, str | None]:
    """Answers for `qids` (lower-case "q1".."q8"): the object answering most questions (the later on a tie);
    the questions it leaves open are read from their entries in the text."""
    body = "\n".join(FENCE.findall(text)) or text
    best: dict[str, str | None] = {q: None for q in qids}
    for candidate in _objects(body):
        obj = _load(candidate)
        if obj is not None:
            found = _from_object(obj, qids)
            if sum(v is not None for v in found.values()) >= max(1, sum(v is not None for v in best.values())):
                best = found
    if any(v is None for v in best.values()):
        by_pattern = _by_pattern(body, qids)
        best = {q: best[q] or by_pattern[q] for q in qids}
    return best


def read_reply(raw: str, case: Case, protocol: str) -> dict:
    """-> {"answers", "dropped" (the reason, or None), "nonreference" (the lenient reading differs from the
    reference reading)}."""
    try:
        reference, dropped = reference_answers(raw, case), None
    except Dropped as e:
        reference, dropped = None, str(e)
    if protocol == "reference":
        return {"answers": reference, "dropped": dropped, "nonreference": False}
    lenient = lenient_answers(raw, [q.id for q in case.questions])
    return {"answers": lenient, "dropped": None, "nonreference": lenient != reference}
