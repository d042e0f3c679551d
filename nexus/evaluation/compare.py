"""Sample folders side by side (`tools/compare.py`, docs/viewer.md): the videos of N `tools/sample.py` folders
matched by prompt, one grid video per prompt (a labelled column per folder), and one static `index.html` with
each folder's settings (the keys that differ highlighted) and, where `tools/evaluate.py` scored a folder, its
scores.

Matching is by prompt text: a folder's video seed is derived from (sampling.seed, prompt id) and a folder holds
one sampling.seed, so the prompt names the video within a folder; folders sampled with other seeds line up by
prompt and show their seed in the table. A prompt a folder lacks gets a grey "missing" column and a warning.

Grids are H.264 mp4 (yuv420p), which Debian's Chromium plays (tests/test_compare.py loads the page in it).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nexus.data.video import atomic_write, decode_mp4, write_mp4
from nexus.errors import UserError
from nexus.evaluation.compare_page import page
from nexus.evaluation.grid import even, grid
from nexus.inference.provenance import RECORD, read_manifest, videos

FRAMES = ("longest", "shortest")   # pad every column to the longest clip (last frame held), or trim to the shortest
# tiny 32x32 samples are upscaled until a label fits and a browser shows them (tools/compare.py --help says 256)
MIN_HEIGHT = 256
CRF = 18                           # a viewer, not training data: visually lossless at a third of CRF 12's size
SCORES_FILE = Path("eval") / "scores.json"     # where tools/evaluate.py writes a folder's scores


@dataclass
class Run:
    """One sample folder as the page shows it."""
    folder: Path
    label: str
    record: dict
    prompts: dict[str, str]       # prompt id -> text, for every mp4 in the folder
    files: dict[str, Path]        # prompt id -> mp4
    scores: dict | None = None    # tools/evaluate.py's scores.json
    scores_from: Path | None = None


# ---- checks (read only; everything is checked before any video is decoded) ---------------------------------
def default_labels(folders: list[Path]) -> list[str]:
    """The shortest trailing parts of the paths that tell the folders apart (samples/upfb/seed0 -> upfb/seed0)."""
    parts = [Path(os.path.abspath(f)).parts for f in folders]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(f) for f in folders]      # the same folder twice: nothing tells them apart


def check_labels(labels: list[str] | None, folders: list[Path]) -> list[str]:
    if labels is None:
        return default_labels(folders)
    given = ",".join(labels)
    if len(labels) != len(folders):
        raise UserError(f"--labels {given}: {len(labels)} label{'s' * (len(labels) != 1)} for {len(folders)} "
                        f"folders; give one per folder, comma-separated, in the folders' order")
    if any(not s.strip() for s in labels):
        raise UserError(f"--labels {given}: an empty label; give every folder a name")
    if len(set(labels)) != len(labels):
        raise UserError(f"--labels {given}: the same label twice; give every folder its own name")
    return [s.strip() for s in labels]


def read_run(folder: Path, label: str, scores: Path | None = None) -> Run:
    """A sample folder's record, prompts and videos (+ scores: `scores`, else <folder>/eval/scores.json)."""
    if not folder.is_dir():
        raise UserError(f"folders: {folder}: {'not a folder' if folder.exists() else 'no such folder'}; pass the "
                        f"out_dir folders tools/sample.py wrote")
    if not (folder / RECORD).is_file():
        raise UserError(f"folders: {folder} has no {RECORD}: not a tools/sample.py folder; pass the folders "
                        f"tools/sample.py wrote (runs/<recipe>/samples/<run.name>)")
    try:
        record = json.loads((folder / RECORD).read_text())
    except ValueError as e:
        raise UserError(f"folders: {folder / RECORD} cannot be read ({e}); sample the folder again") from e
    files = {f.stem: f for f in videos(folder)}
    if not files:
        raise UserError(f"folders: {folder} holds no mp4 videos; sample into it first (tools/sample.py)")
    texts = read_manifest(folder)       # tools/sample.py writes it; a video it lacks matches by its file name
    run = Run(folder, label, record, {i: texts.get(i) or i for i in files}, files)
    run.scores_from = scores if scores is not None else (folder / SCORES_FILE if (folder / SCORES_FILE).is_file()
                                                         else None)
    if run.scores_from is not None:
        run.scores = read_scores(run.scores_from)
    return run


def read_scores(path: Path) -> dict:
    path = path / SCORES_FILE.name if path.is_dir() else path
    if not path.is_file():
        raise UserError(f"--scores {path}: no such file; pass tools/evaluate.py's scores.json (<videos>/eval/"
                        f"scores.json) or leave the entry empty")
    try:
        scores = json.loads(path.read_text())
    except ValueError as e:
        raise UserError(f"--scores {path}: not JSON ({e}); pass tools/evaluate.py's scores.json") from e
    if not isinstance(scores, dict) or "scores" not in scores:
        raise UserError(f"--scores {path}: not a tools/evaluate.py scores.json (no 'scores' in it)")
    return scores


def check_out(out: Path, folders: list[Path], overwrite: bool) -> Path:
    """--out: a folder that can be written (nexus.checks), not an input, and new, empty, or --overwrite."""
    from nexus.checks import output_folder
    out = output_folder("--out", out)
    if any(out.resolve() == Path(f).resolve() for f in folders):
        raise UserError(f"--out {out}: one of the folders compared; write the page elsewhere")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out {out}: exists and is not empty; pass --overwrite to replace its page and videos, "
                        f"or choose another folder")
    return out


def read_runs(folders: list, labels: list[str] | None = None, scores: list | None = None) -> list[Run]:
    folders = [Path(f) for f in folders]
    labels = check_labels(labels, folders)
    if scores is not None and len(scores) != len(folders):
        n = len(scores)
        raise UserError(f"--scores {','.join(map(str, scores))}: {n} entr{'ies' if n != 1 else 'y'} for "
                        f"{len(folders)} folders; give one per folder (an empty entry: the folder's own "
                        f"eval/scores.json, if any)")
    scores = [Path(s) if s else None for s in (scores or [None] * len(folders))]
    return [read_run(f, s, p) for f, s, p in zip(folders, labels, scores)]


# ---- matching --------------------------------------------------------------------------------------------
@dataclass
class Entry:
    """One prompt: its text, and each run's prompt id for it (None where the run lacks it)."""
    text: str
    ids: list[str | None]

    def name(self, index: int) -> str:
        first = next(i for i in self.ids if i is not None)
        return f"{index:03d}-{first}"       # ids are already file names (tools/sample.py); the index keeps them apart


def match(runs: list[Run]) -> list[Entry]:
    """Entries in order of first appearance; a text a folder holds k times (several ids) matches k times."""
    keys: dict[tuple[str, int], Entry] = {}
    for r, run in enumerate(runs):
        seen: dict[str, int] = {}
        for pid in sorted(run.files):
            text = run.prompts[pid]
            k = seen[text] = seen.get(text, -1) + 1
            entry = keys.setdefault((text, k), Entry(text, [None] * len(runs)))
            entry.ids[r] = pid
    return list(keys.values())


# ---- the whole ---------------------------------------------------------------------------------------------
def clear_out(out: Path) -> None:
    """--overwrite: remove what an earlier compare wrote there (nothing else)."""
    shutil.rmtree(out / "videos", ignore_errors=True)
    (out / "index.html").unlink(missing_ok=True)


def fps_of(runs: list[Run], log) -> int:
    rates = [int(r.record.get("settings", {}).get("sampling", {}).get("fps") or 16) for r in runs]
    if len(set(rates)) > 1:
        log(f"warning: the folders were sampled at {sorted(set(rates))} fps; the grids play at {rates[0]} "
            f"({runs[0].label}'s)")
    return rates[0]


def frame_size(path: Path) -> tuple[int, int]:
    """(height, width) from the mp4's header, without decoding it."""
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.height, stream.width


def compare(runs: list[Run], out: str | Path, frames: str = "longest", height: int | None = None,
            overwrite: bool = False, log=print) -> Path:
    """Grid videos under <out>/videos and <out>/index.html for runs already read (read_runs) -> index.html."""
    if frames not in FRAMES:
        raise UserError(f"--frames {frames}: choose one of {', '.join(FRAMES)}")
    if height is not None and height < 2:
        raise UserError(f"--height {height}: give at least 2 (pixels)")
    out = check_out(Path(out), [r.folder for r in runs], overwrite)
    entries = match(runs)
    for entry in entries:
        lacking = [r.label for r, i in zip(runs, entry.ids) if i is None]
        if lacking:
            log(f"warning: prompt {entry.text!r} is missing from {', '.join(lacking)}: shown as a grey column")
    sizes = [{i: frame_size(f) for i, f in r.files.items()} for r in runs]
    common = even(height or max(MIN_HEIGHT, *(h for s in sizes for h, _ in s.values())))
    # a folder's missing prompt keeps the width of that folder's (first) video, so its column does not jump
    missing = [even(w * common / h) for h, w in (next(iter(s.values())) for s in sizes)]
    if overwrite:
        clear_out(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    fps, names = fps_of(runs, log), [e.name(n) for n, e in enumerate(entries, start=1)]
    for n, (entry, name) in enumerate(zip(entries, names), start=1):
        clips = [decode_mp4(str(r.files[i])) if i else None for r, i in zip(runs, entry.ids)]
        video = grid(clips, [r.label for r in runs], common, frames, missing)
        write_mp4(out / "videos" / f"{name}.mp4", video, fps, CRF)
        log(f"[{n}/{len(entries)}] {entry.text[:60]!r}: {video.shape[0]} frames, {video.shape[2]}x{video.shape[1]} "
            f"-> videos/{name}.mp4")
    index = out / "index.html"
    with atomic_write(index) as f:
        f.write(page(runs, entries, names, frames, common).encode())
    return index


def compare_folders(folders: list, out: str | Path, labels: list[str] | None = None, scores: list | None = None,
                    frames: str = "longest", height: int | None = None, overwrite: bool = False, log=print) -> Path:
    """read_runs + compare: the library's one call (the shapes lab's report uses it)."""
    return compare(read_runs(folders, labels, scores), out, frames, height, overwrite, log)
