"""The VR-Bench evaluation loop: cases + a folder of `<case id>.mp4` (given, or generated through
`nexus.inference.launch.sample`) -> judge answers, cached -> `scores.json`, `cases.csv` and a one-run table.

Cache: one JSON file per (case, sha256 of the video bytes, judge identity) holding the judge's raw reply (or
its P(yes) values), written atomically the moment the case is judged, so an interrupted run resumes where it
stopped, a re-run judges only new or changed videos, and runs that share a cache folder share replies. Replies are
read at scoring time under the chosen protocol, so `--protocol lenient` re-reads cached replies without a judge.
The judge loads only when some case is not cached. The judge identity includes a fingerprint of its files and a
hash of the prompt templates, so a different judge or an edited template is never served a stale reply.
A case whose video is missing, unreadable or sampled from another prompt (the folder's prompts.jsonl says) is
reported and left out of the scores; the rest go on.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shlex
from pathlib import Path

from tqdm import tqdm

from nexus.data.video import atomic_write
from nexus.errors import UserError
from nexus.evaluation.vrbench.cases import DIMENSIONS, Case, load_cases
from nexus.evaluation.vrbench.judge import (MODES, ask_all, ask_each, check_judge, identity, judge_info, load_judge,
                                            prompt_version, sample_frames)
from nexus.evaluation.vrbench.parse import read_reply
from nexus.evaluation.vrbench.protocol import PROTOCOLS, deviations, reference_case_set, spec
from nexus.evaluation.vrbench.report import write_table
from nexus.evaluation.vrbench.scores import METRICS, aggregate, case_scores, dropped_scores
from nexus.inference.provenance import MANIFEST

ROOT = Path(__file__).resolve().parents[3]


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text.encode())


def video_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_file(cache: Path, judge_id: str, case_id: str, sha: str) -> Path:
    return cache / hashlib.sha256(judge_id.encode()).hexdigest()[:12] / f"{case_id}.{sha[:16]}.json"


def read_cached(path: Path, key: dict) -> dict | None:
    """The cached entry when it exists and its full key matches (the file name holds only hash prefixes)."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if all(entry.get(k) == v for k, v in key.items()) else None


def select(cases: list[Case], only: str | None, limit: int | None, left_out: dict[str, str] | None = None) -> list[Case]:
    """only: comma-separated case ids or dimension codes (DRF_001,CAC); limit: the first n of those."""
    if only:
        wanted = {w.strip() for w in only.split(",") if w.strip()}
        known = {c.id for c in cases} | {c.dimension for c in cases}
        if unknown := wanted - known:
            why = [f"{u} is not in the reference case set: its id repeats later in its file and the reference judges "
                   f"the later case, {left_out[u]} here" for u in sorted(unknown) if u in (left_out or {})]
            raise ValueError(f"only={only}: unknown case ids or dimensions {sorted(unknown)}"
                             + (f"; {'; '.join(why)}" if why else ""))
        cases = [c for c in cases if c.id in wanted or c.dimension in wanted]
    return cases[:limit] if limit else cases


def generate_videos(cases: list[Case], videos: Path, overrides: str) -> None:
    """Sample the cases' prompts with `tools/sample.py`'s config (recipes/sample) and these overrides."""
    from hydra import compose, initialize_config_dir

    from nexus.inference.launch import sample
    videos.mkdir(parents=True, exist_ok=True)
    prompts = videos / "vrbench_prompts.jsonl"   # the selected cases under their unique ids
    write_text(prompts, "".join(json.dumps({"id": c.id, "prompt": c.prompt}) + "\n" for c in cases))
    with initialize_config_dir(config_dir=str(ROOT / "recipes" / "sample"), version_base=None):
        cfg = compose("sample", overrides=[*shlex.split(overrides), f"prompt_file={prompts}", f"out_dir={videos}"])
    sample(cfg)


def sampled_prompts(videos: Path) -> dict[str, str]:
    """{video id: prompt} from the folder's prompts.jsonl (written by tools/sample.py), empty when there is none."""
    try:
        lines = (videos / MANIFEST).read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        try:
            item = json.loads(line)
            out[str(item["id"])] = item["prompt"]
        except (ValueError, KeyError, TypeError):
            continue
    return out


def evaluate(cases: str | Path, videos: str | Path, judge: str | Path, out: str | Path, mode: str = "generate",
             frames: int = 16, max_new_tokens: int = 1024, dtype: str = "bf16", device: str = "cpu",
             only: str | None = None, limit: int | None = None, cache: str | Path | None = None,
             generate: str | None = None, name: str | None = None, protocol: str = "reference",
             round_cases: bool | None = None) -> dict:
    """Judge every selected case's video and write the scores; returns the scores.json content, with
    "judged" (new judge calls) and "cached" (replies reused) counts. protocol: how replies are read (parse.py);
    round_cases: round case scores to 4 digits as the reference does (default: with the reference protocol)."""
    if mode not in MODES:
        raise ValueError(f"mode={mode}: expected one of {', '.join(MODES)}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol}: expected one of {', '.join(PROTOCOLS)}")
    digits = spec()["case_digits"] if (protocol == "reference" if round_cases is None else round_cases) else None
    all_cases, problems = load_cases(cases)
    case_set, notes = reference_case_set(all_cases)
    kept = {c.raw_id: c.id for c in case_set}
    todo = select(case_set, only, limit, {c.id: kept[c.raw_id] for c in all_cases if c not in case_set})
    for p in problems + notes:
        print(f"VR-Bench: {p}")
    check_judge(judge)                       # a wrong folder stops here, before videos are generated
    out, videos = Path(out), Path(videos)
    out.mkdir(parents=True, exist_ok=True)
    if generate is not None:
        generate_videos(todo, videos, generate)
    cache = Path(cache) if cache else out / "judge_cache"
    info = judge_info(judge)
    judge_id = identity(info, mode, frames, max_new_tokens, dtype)
    sampled = sampled_prompts(videos)
    model, rows, counts = None, {}, {"judged": 0, "cached": 0}
    for case in tqdm(todo, desc=f"VR-Bench ({mode}, {protocol})", unit="case"):
        video = videos / f"{case.id}.mp4"
        if not video.is_file():
            problems.append(f"{case.id}: no video {video}; generate it (tools/vrbench.py --generate ...) or leave "
                            f"the case out (--only)")
            continue
        if case.id in sampled and sampled[case.id] != case.prompt:
            problems.append(f"{case.id}: {video} was sampled from another prompt ({sampled[case.id][:60]!r}, says "
                            f"{videos / MANIFEST}); re-generate it from the case's prompt")
            continue
        key = {"case": case.id, "video_sha256": video_hash(video), "judge": judge_id}
        path = cache_file(cache, judge_id, case.id, key["video_sha256"])
        entry = read_cached(path, key)
        if entry is None:
            try:
                clip = sample_frames(video, frames)
            except Exception as e:   # PyAV raises many types for a broken file; the message says which
                problems.append(f"{case.id}: unreadable video {video} ({type(e).__name__}: {e}); re-generate it")
                continue
            model = model or load_judge(judge, dtype, device)
            reply = ask_all(model, case, clip, max_new_tokens) if mode == "generate" else ask_each(model, case, clip)
            entry = {**key, **reply}
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(entry, indent=1))
            counts["judged"] += 1
        else:
            counts["cached"] += 1
        if mode == "generate":
            reading = read_reply(entry["raw"], case, protocol)
        else:
            reading = {"answers": {q: "Yes" if p > 0.5 else "No" for q, p in entry["probs"].items()}, "dropped": None,
                       "nonreference": False}
        if reading["dropped"]:
            rows[case.id] = dropped_scores(case, reading["dropped"])
        else:
            rows[case.id] = case_scores(case, reading["answers"], digits)
            rows[case.id]["answers"] = reading["answers"]
        rows[case.id].update({k: entry[k] for k in ("raw", "probs") if k in entry})
        rows[case.id]["nonreference"] = reading["nonreference"]
    if not rows:          # a scores.json of nothing would read as a run with every dimension missing
        raise UserError(f"no case could be judged ({len(problems)} skipped; the first: "
                        f"{(problems or ['none'])[0]}); no scores.json was written")
    expected = {d: sum(c.dimension == d for c in case_set) for d in DIMENSIONS}
    changed = deviations(mode, frames, max_new_tokens, dtype) + (
        [f"case scores not rounded (reference: {spec()['case_digits']} digits)"] if protocol == "reference" and digits
        is None else [])
    result = {"name": name or out.name, "protocol": protocol if mode == "generate" else "prob",
              "deviations": changed, "judge": judge_id, "judge_info": info, "mode": mode,
              "prompt_version": prompt_version(mode), "case_digits": digits, "case_set": len(case_set),
              "selected": len(todo), **aggregate(rows, expected, digits), "cases": rows, "problems": problems,
              "notes": notes, **counts}
    write_scores(result, out)
    return result


def write_scores(result: dict, out: Path) -> None:
    write_text(out / "scores.json", json.dumps(result, indent=1))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["case", "dimension", *METRICS, "unparsed", "dropped", "nonreference"])
    for case_id, r in result["cases"].items():
        writer.writerow([case_id, r["dimension"], *("" if r[m] is None else f"{r[m]:.4f}" for m in METRICS),
                         r["unparsed"], r.get("dropped") or "", int(bool(r.get("nonreference")))])
    write_text(out / "cases.csv", buf.getvalue())
    write_table({result["name"]: result}, out / "vrbench")
