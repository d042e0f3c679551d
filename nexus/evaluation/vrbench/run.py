"""The VR-Bench evaluation loop: cases + a folder of `<case id>.mp4` (given, or generated through
`nexus.inference.launch.sample`) -> judge answers, cached -> `scores.json`, `cases.csv` and a one-run table.

Cache: one JSON file per (case, sha256 of the video bytes, judge identity), written atomically the moment the
case is judged, so an interrupted run resumes where it stopped, a re-run judges only new or changed videos, and
runs that share a cache folder share answers. The judge loads only when some case is not cached.
A case whose video is missing or unreadable is reported and left out of the scores; the rest go on.
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
from nexus.evaluation.vrbench.cases import Case, load_cases
from nexus.evaluation.vrbench.judge import MODES, ask_all, ask_each, check_judge, identity, load_judge, sample_frames
from nexus.evaluation.vrbench.report import write_table
from nexus.evaluation.vrbench.scores import METRICS, aggregate, case_scores

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


def select(cases: list[Case], only: str | None, limit: int | None) -> list[Case]:
    """only: comma-separated case ids or dimension codes (DRF_001,CAC); limit: the first n of those."""
    if only:
        wanted = {w.strip() for w in only.split(",") if w.strip()}
        known = {c.id for c in cases} | {c.dimension for c in cases}
        if unknown := wanted - known:
            raise ValueError(f"only={only}: unknown case ids or dimensions {sorted(unknown)}")
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


def evaluate(cases: str | Path, videos: str | Path, judge: str | Path, out: str | Path, mode: str = "generate",
             frames: int = 16, max_new_tokens: int = 1024, dtype: str = "bf16", device: str = "cpu",
             only: str | None = None, limit: int | None = None, cache: str | Path | None = None,
             generate: str | None = None, name: str | None = None) -> dict:
    """Judge every selected case's video and write the scores; returns the scores.json content, with
    "judged" (new judge calls) and "cached" (answers reused) counts."""
    if mode not in MODES:
        raise ValueError(f"mode={mode}: expected one of {', '.join(MODES)}")
    all_cases, problems = load_cases(cases)
    todo = select(all_cases, only, limit)
    for p in problems:
        print(f"VR-Bench: {p}")
    check_judge(judge)                       # a wrong folder stops here, before videos are generated
    out, videos = Path(out), Path(videos)
    out.mkdir(parents=True, exist_ok=True)
    if generate is not None:
        generate_videos(todo, videos, generate)
    cache = Path(cache) if cache else out / "judge_cache"
    judge_id = identity(judge, mode, frames, max_new_tokens, dtype)
    model, rows, counts = None, {}, {"judged": 0, "cached": 0}
    for case in tqdm(todo, desc=f"VR-Bench ({mode})", unit="case"):
        video = videos / f"{case.id}.mp4"
        if not video.is_file():
            problems.append(f"{case.id}: no video {video}; generate it (tools/vrbench.py --generate ...) or leave "
                            f"the case out (--only)")
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
        rows[case.id] = case_scores(case, entry["answers"])
        rows[case.id].update({k: entry[k] for k in ("answers", "probs") if k in entry})
    result = {"name": name or out.name, "judge": judge_id, "mode": mode, **aggregate(rows), "cases": rows,
              "problems": problems, **counts}
    write_scores(result, out)
    return result


def write_scores(result: dict, out: Path) -> None:
    write_text(out / "scores.json", json.dumps(result, indent=1))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["case", "dimension", *METRICS, "unparsed"])
    for case_id, r in result["cases"].items():
        writer.writerow([case_id, r["dimension"], *("" if r[m] is None else f"{r[m]:.4f}" for m in METRICS),
                         r["unparsed"]])
    write_text(out / "cases.csv", buf.getvalue())
    write_table({result["name"]: result}, out / "vrbench")
