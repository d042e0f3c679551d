"""Folder of videos + caption manifest -> webdataset clip shards (`<key>.mp4` + `<key>.json`).

Two passes: every manifest row is probed (in parallel) and either kept or recorded as bad with a reason;
the good rows are packed greedily by byte size into a plan that depends only on the manifest and the files,
so a rerun recomputes the same plan and writes only the shards whose final .tar does not exist yet.
"""
from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

import av
import webdataset as wds
from tqdm import tqdm

from nexus.data.shards import ShardIndex
from nexus.data.video import atomic_write, decode_mp4, encode_mp4, worker_context

PREFIX = "shard"


class TooManyBadSamples(ValueError):
    """The bad share of the manifest exceeds --max-bad-fraction; `summary` holds the counts so far."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def read_manifest(path: str | Path) -> list[dict]:
    """CSV with a header, or JSONL (by suffix, else sniffed from the first character) -> list of rows."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    is_jsonl = path.suffix.lower() in (".jsonl", ".json") or (
        path.suffix.lower() != ".csv" and text.lstrip().startswith("{"))
    if is_jsonl:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not a JSON object ({e})") from e
        return rows
    reader = csv.DictReader(text.splitlines())
    missing = {"path", "caption"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{path}: CSV header {reader.fieldnames} lacks column(s) {sorted(missing)}")
    return list(reader)


def sample_key(rel_path: str) -> str:
    """Stable key of a source path: the same row gets the same key on every run and machine."""
    return hashlib.sha1(rel_path.encode("utf-8")).hexdigest()[:16]


def _probe(job: tuple[str, dict, int]) -> dict:
    """Open a video and count its decodable frames. Returns the row's plan entry, or {"reason": ...}.
    Runs in a worker process, so it takes and returns plain data only."""
    videos, row, min_frames = job
    src = Path(videos) / row["path"]
    if not src.is_file():
        return {"reason": "missing", "detail": f"no file {src}"}
    try:
        with av.open(str(src), "r") as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            declared, height, width = stream.frames, stream.codec_context.height, stream.codec_context.width
            frames = sum(1 for _ in container.decode(stream))
    except (av.FFmpegError, IndexError, OSError, ValueError) as e:
        return {"reason": "unreadable", "detail": f"{type(e).__name__}: {e}"}
    if declared and frames < declared:   # a cut-off file whose index survived: keep no half clip
        return {"reason": "unreadable", "detail": f"decoded {frames} of {declared} frames"}
    if frames < max(min_frames, 1):
        return {"reason": "too_short", "detail": f"{frames} frames < --min-frames {min_frames}"}
    fps = row["fps"] if row["fps"] is not None else (float(rate) if rate else None)
    if not fps or fps <= 0:
        return {"reason": "unreadable", "detail": "no frame rate in the stream or the manifest"}
    reencode = src.suffix.lower() != ".mp4"
    if reencode:   # yuv420p needs even sizes: the re-encode drops an odd last row/column
        height, width = height // 2 * 2, width // 2 * 2
    # a re-encoded clip's size is not known before encoding: the source size stands in (deterministic)
    return {"size": src.stat().st_size, "reencode": reencode, "json": {
        "caption": row["caption"], **({"reasoning_prompt": row["reasoning_prompt"]}
                                      if row.get("reasoning_prompt") else {}),
        "fps": float(fps), "num_frames": frames, "height": height, "width": width, "source": row["path"]}}


def _load(job: tuple[str, dict]) -> bytes:
    """mp4 bytes of a planned sample: the file as-is, or the re-encoded frames of another container."""
    videos, entry = job
    src = Path(videos) / entry["json"]["source"]
    if not entry["reencode"]:
        return src.read_bytes()
    meta = entry["json"]
    frames = decode_mp4(str(src))[:, :meta["height"], :meta["width"]]
    return encode_mp4(frames, fps=max(1, round(meta["fps"])))


def _clean_row(row: dict) -> tuple[dict | None, dict | None]:
    """Manifest row -> (normalised row, None) or (None, bad record) for problems visible without the file."""
    path = str(row.get("path") or "").strip()
    caption = str(row.get("caption") or "").strip()
    if not path:
        return None, {"path": path, "reason": "missing", "detail": "no path in the manifest row"}
    if not caption:
        return None, {"path": path, "reason": "empty_caption", "detail": "empty or missing caption"}
    fps = row.get("fps")
    try:
        fps = float(fps) if fps not in (None, "") else None
    except (TypeError, ValueError):
        return None, {"path": path, "reason": "bad_fps", "detail": f"fps {fps!r} is not a number"}
    return {"path": path, "caption": caption, "fps": fps,
            "reasoning_prompt": str(row.get("reasoning_prompt") or "").strip()}, None


def pack(entries: list[dict], target_bytes: int) -> list[list[dict]]:
    """Greedy, order-preserving packing: a new shard starts when the next sample would pass the target."""
    shards: list[list[dict]] = []
    size = 0
    for e in entries:
        if not shards or (shards[-1] and size + e["size"] > target_bytes):
            shards.append([])
            size = 0
        shards[-1].append(e)
        size += e["size"]
    return shards


def _write_shard(path: Path, entries: list[dict], data) -> None:
    # same atomic, fixed-mtime writing as shards.write_shards: the final name appears only when complete
    with atomic_write(path) as f, wds.TarWriter(f, encoder=False, mtime=0.0) as writer:
        for e, mp4 in zip(entries, data, strict=True):
            writer.write({"__key__": e["key"], "mp4": mp4, "json": json.dumps(e["json"]).encode("utf-8")})


def _write_json(path: Path, obj, lines: bool = False) -> None:
    text = "".join(json.dumps(o) + "\n" for o in obj) if lines else json.dumps(obj, indent=1) + "\n"
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))


def prepare_shards(videos: str | Path, manifest: str | Path, out: str | Path, min_frames: int = 1,
                   shard_size_mb: float = 1000, workers: int = 1, max_bad_fraction: float = 0.05,
                   progress: bool = True) -> dict:
    """Probe, plan and write `out/shard-NNNNNN.tar`, `out/bad_samples.jsonl` and `out/manifest.json`.
    Returns the summary; raises TooManyBadSamples (after writing the bad-sample report, before any shard)
    when the bad share exceeds `max_bad_fraction`."""
    t0 = time.perf_counter()
    videos, out = Path(videos), Path(out)
    if not videos.is_dir():
        raise FileNotFoundError(f"--videos {videos} is not a folder")
    if not Path(manifest).is_file():
        raise FileNotFoundError(f"--manifest {manifest}: no such file (CSV with a header, or JSONL)")
    rows = read_manifest(manifest)
    if not rows:
        raise ValueError(f"--manifest {manifest} lists no videos (a CSV needs a header line, then one row per video: "
                         f"path,caption)")
    out.mkdir(parents=True, exist_ok=True)

    bad: list[dict] = []
    jobs: list[tuple[str, dict, int]] = []
    seen: set[str] = set()
    for raw in rows:
        row, record = _clean_row(raw)
        if row is not None and sample_key(row["path"]) in seen:
            row, record = None, {"path": row["path"], "reason": "duplicate", "detail": "path listed twice"}
        if record is not None:
            bad.append(record)
            continue
        seen.add(sample_key(row["path"]))
        jobs.append((str(videos), row, min_frames))

    pool: Executor | None = ProcessPoolExecutor(workers, mp_context=worker_context()) \
        if workers > 1 else None
    try:
        run = pool.map if pool is not None else map
        good: list[dict] = []
        for (_, row, _), res in tqdm(zip(jobs, run(_probe, jobs)), total=len(jobs), desc="probe",
                                     unit="video", disable=not progress):
            if "reason" in res:
                bad.append({"path": row["path"], **res})
            else:
                good.append({"key": sample_key(row["path"]), **res})
        _write_json(out / "bad_samples.jsonl", bad, lines=True)

        summary = {"rows": len(rows), "good": len(good), "bad": len(bad),
                   "bad_by_reason": dict(sorted(Counter(b["reason"] for b in bad).items()))}
        if rows and len(bad) / len(rows) > max_bad_fraction:
            raise TooManyBadSamples(
                f"{len(bad)} of {len(rows)} rows are bad ({len(bad) / len(rows):.1%}), more than "
                f"--max-bad-fraction {max_bad_fraction:g}; see {out / 'bad_samples.jsonl'} "
                f"(by reason: {summary['bad_by_reason']})", summary)

        plan = pack(good, int(shard_size_mb * 2 ** 20))
        names = [f"{PREFIX}-{i:06d}.tar" for i in range(len(plan))]
        stale = sorted({p.name for p in out.glob(f"{PREFIX}-*.tar")} - set(names))
        if stale:
            raise ValueError(f"{out} holds shards outside this manifest's plan ({stale[:3]}...); "
                             f"the manifest or --shard-size-mb changed: use a fresh --out")
        todo = []
        for name, entries in zip(names, plan):
            if (out / name).exists():   # complete (atomic rename); check it holds this plan's samples
                if ShardIndex(out / name).keys != [e["key"] for e in entries]:
                    raise ValueError(f"{out / name} holds other samples than this manifest's plan "
                                     f"(the manifest or --shard-size-mb changed): use a fresh --out")
            else:
                todo.append((name, entries))
        bar = tqdm(total=sum(len(e) for _, e in todo), desc="write", unit="video", disable=not progress)
        with bar:
            for name, entries in todo:   # one shard in flight at a time bounds memory to about a shard
                data = (bar.update(1) or d for d in run(_load, [(str(videos), e) for e in entries]))
                _write_shard(out / name, entries, data)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    shards = [{"file": name, "samples": len(entries), "bytes": (out / name).stat().st_size,
               "keys": [e["key"] for e in entries]} for name, entries in zip(names, plan)]
    _write_json(out / "manifest.json", {"rows": len(rows), "good": len(good), "shards": shards, "bad": bad})
    summary.update(shards=len(plan), shards_written=len(todo), shards_skipped=len(plan) - len(todo),
                   total_mb=sum(s["bytes"] for s in shards) / 2 ** 20,
                   seconds=time.perf_counter() - t0, out=str(out))
    return summary


def format_summary(s: dict) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in s["bad_by_reason"].items()) or "none"
    lines = [f"rows {s['rows']}: good {s['good']}, bad {s['bad']} ({reasons})"]
    if "shards" in s:
        lines.append(f"shards {s['shards']}: written {s['shards_written']}, skipped (already complete) "
                     f"{s['shards_skipped']}; {s['total_mb']:.2f} MB in {s['out']}; {s['seconds']:.1f} s")
    return "\n".join(lines)
