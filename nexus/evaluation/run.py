"""Scoring videos with the VBench-style suite: one loop for a folder of mp4 files (`tools/evaluate.py`), the
periodic evaluation callback and the checkpoint watcher; results as JSON + a Markdown table."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Iterable

import torch
from omegaconf import DictConfig, OmegaConf

from nexus import console
from nexus.data.video import atomic_write, decode_mp4
from nexus.evaluation.suite import Suite, aggregate, build_suite
from nexus.inference.prompts import load_prompts
from nexus.inference.provenance import MANIFEST, RECORD as SAMPLE_RECORD, read_manifest
from nexus.provenance import read_json
from nexus.models.loading import DTYPES


def suite_from_config(m: DictConfig | dict, tiny_root: str | None = None) -> Suite:
    """`metrics:` config -> Suite. With `tiny_root`, absent networks are the tiny random ones built there."""
    m = OmegaConf.to_container(m, resolve=True) if isinstance(m, DictConfig) else dict(m)
    networks = {k: v for k, v in (m.get("networks") or {}).items() if v}
    if tiny_root:
        from nexus.evaluation.tiny import ensure_tiny_eval_models
        networks = {**ensure_tiny_eval_models(tiny_root), **networks}
    device = m.get("device") or "auto"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return build_suite(networks, fps=m.get("fps", 16), device=device, dtype=DTYPES[m.get("dtype", "fp32")],
                       only=m.get("dimensions"), num_frames=m.get("num_frames"))


def score_videos(suite: Suite, items: Iterable[tuple[str, torch.Tensor, str]], gather=None) -> dict:
    """items: (id, uint8 (T, H, W, 3) video, prompt). Returns the per-video rows, the means over the videos,
    VBench's aggregation, the exact/proxy labels and the unavailable dimensions with their reasons. Across
    processes, torchmetrics syncs the means and `gather` (this process's rows -> everyone's) joins the rows."""
    suite.reset()
    ids, prompts = [], []
    for vid, video, prompt in items:
        suite.update(video[None], [prompt])
        ids.append(vid)
        prompts.append(prompt)
    if not ids and gather is None:
        raise ValueError("no video could be scored")
    rows = [{"id": i, "prompt": p, **s} for i, p, s in zip(ids, prompts, suite.per_video())]
    scores = suite.compute()
    if gather is not None:
        rows = sorted(gather(rows), key=lambda r: r["id"])
    return {"videos": len(rows), "scores": scores, "labels": suite.labels, "unavailable": suite.unavailable,
            "vbench": aggregate(scores), "rows": rows}


def logged_values(result: dict) -> dict[str, float]:
    """The scalars a logger gets: eval/<dimension> and eval/vbench_<quality|semantic|total> where defined."""
    values = {f"eval/{k}": v for k, v in result["scores"].items()}
    return values | {f"eval/vbench_{k}": result["vbench"][k] for k in ("quality", "semantic", "total")
                     if result["vbench"][k] is not None}


def prompt_from_name(stem: str) -> str:
    """VBench names its videos '<prompt>-<n>.mp4'; underscores stand for spaces in hand-made names."""
    return re.sub(r"-\d+$", "", stem).replace("_", " ")


def folder_prompts(folder: str | Path, manifest: str | None = None) -> tuple[dict[str, str], str]:
    """-> (prompt by video id, where they come from): `manifest`, else the folder's prompts.jsonl (written by
    tools/sample.py), else {} and 'file names' (VBench's <prompt>-<n>.mp4)."""
    if manifest:
        return {p.id: p.text for p in load_prompts(prompt_file=manifest, key="manifest")}, str(manifest)
    own = Path(folder) / MANIFEST
    if own.is_file():
        return read_manifest(Path(folder)), str(own)
    return {}, "file names"


def video_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    files = sorted(folder.glob("*.mp4"))
    if not folder.is_dir() or not files:
        raise FileNotFoundError(f"videos={folder}: {'no mp4 files in it' if folder.is_dir() else 'no such folder'}")
    return files


def read_folder(folder: str | Path, manifest: str | None = None, errors: list | None = None):
    """(id, video, prompt) for each readable mp4 in `folder` (sorted); unreadable ones, and with a manifest the
    ones it has no prompt for, go to `errors`."""
    files = video_files(folder)
    prompts, source = folder_prompts(folder, manifest)
    from tqdm import tqdm
    for f in tqdm(files, desc="scoring", unit="video"):
        if prompts and f.stem not in prompts:
            warnings.warn(f"skipping {f.name}: {source} holds no prompt for it")
            if errors is not None:
                errors.append({"file": f.name, "error": f"no prompt for it in {source}"})
            continue
        try:
            video = torch.from_numpy(decode_mp4(str(f)))
        except Exception as e:       # noqa: BLE001  PyAV raises several types; one bad file must not stop the rest
            warnings.warn(f"skipping {f.name}: cannot decode it ({type(e).__name__}: {e})")
            if errors is not None:
                errors.append({"file": f.name, "error": f"{type(e).__name__}: {e}"})
            continue
        yield f.stem, video, prompts.get(f.stem) or prompt_from_name(f.stem)


def markdown(result: dict, title: str = "VBench-style scores") -> str:
    made = (result.get("samples") or {}).get("settings")
    lines = [f"# {title}", "", f"{result['videos']} videos.", ""]
    if result.get("prompts_from"):
        lines += [f"Prompts from: {result['prompts_from']}.", ""]
    if made:
        w = result["samples"].get("weights", {})
        lines += [f"Videos made by: strategy {made['bridge']['strategy']}, {made['sampling']['num_steps']} steps, "
                  f"seed {made['sampling']['seed']}; weights: "
                  + ", ".join(f"{k} {v.get('path') or v.get('source')}" for k, v in w.items() if v)
                  + f" ({SAMPLE_RECORD} has everything).", ""]
    lines += ["| dimension | raw | normalised | label |", "|---|---|---|---|"]
    norm = result["vbench"]["normalised"]
    for k, v in result["scores"].items():
        n = f"{norm[k]:.4f}" if k in norm else "-"
        lines.append(f"| {k} | {v:.4f} | {n} | {result['labels'][k]} |")
    for k, why in result["unavailable"].items():
        lines.append(f"| {k} | unavailable | - | {why} |")
    agg = result["vbench"]
    for k in ("quality", "semantic", "total"):
        v = agg[k]
        lines.append(f"| **{k}** | {'-' if v is None else f'{v:.4f}'} | | "
                     f"{'over the dimensions present' if v is not None else 'no dimension of it scored'} |")
    cols = [k for k in result["scores"]]
    lines += ["", "| id | prompt | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for r in result["rows"]:
        lines.append(f"| {r['id']} | {r['prompt'][:60]} | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")
    if result.get("errors"):
        lines += ["", "Not scored:"] + [f"- {e['file']}: {e['error']}" for e in result["errors"]]
    return "\n".join(lines) + "\n"


def write_report(result: dict, out_dir: str | Path, name: str = "scores", title: str = "VBench-style scores"):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / f"{name}.json") as f:
        f.write(json.dumps(result, indent=2).encode())
    with atomic_write(out / f"{name}.md") as f:
        f.write(markdown(result, title).encode())
    return out / f"{name}.json", out / f"{name}.md"


def evaluate_folder(cfg: DictConfig) -> dict:
    """`tools/evaluate.py`: the folder and prompts checked, networks loaded, then every mp4 in cfg.videos scored.
    The report says where the prompts came from and carries the folder's samples.json (what made the videos)."""
    video_files(cfg.videos)
    _, source = folder_prompts(cfg.videos, cfg.get("manifest"))
    suite = suite_from_config(cfg.metrics, cfg.paths.get("tiny_models"))
    console.attach_log(Path(cfg.out) / "evaluate.log")
    errors: list = []
    result = score_videos(suite, read_folder(cfg.videos, cfg.get("manifest"), errors))
    result |= {"errors": errors, "prompts_from": source, "samples": read_json(Path(cfg.videos) / SAMPLE_RECORD)}
    json_path, md_path = write_report(result, cfg.out)
    print(markdown(result))
    print(f"wrote {json_path} and {md_path}")
    return result
