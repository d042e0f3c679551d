"""A sample folder holds the videos of one set of generating settings, and says which.

`<out_dir>/samples.json` records the settings that change a video (every bridge.* and sampling.* knob but the
progress bar and the encoding batch size), the identity of every set of weights used (the small and large Wan
folders and the VLM by sampled fingerprint; the stage-1 export by full content sha256, or the checkpoint it was
exported from by fingerprint), the code's git commit and each command that sampled into the folder.
`<out_dir>/prompts.jsonl` lists every prompt sampled there ({"id", "prompt"}); tools/evaluate.py reads it.

A second command with other settings, or another text for a prompt id already there, is refused with the
differing keys before anything loads; `overwrite=true` deletes the folder's videos (and their scores) first,
another `run.name` / `out_dir` samples elsewhere. The same settings with new prompts add to the folder.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nexus.errors import UserError
from nexus.inference.prompts import Prompt
from nexus.provenance import (content_sha256, describe, differences, fingerprint, git_state, now, read_json,
                              write_json, command_line)

RECORD, MANIFEST = "samples.json", "prompts.jsonl"
# sampling.* keys that leave every video as it is: the placement only moves weights, small_device runs the same
# kernels elsewhere (tests/test_placement.py); sampling.encoders=cpu does change the rounding of the prompts' features;
# truncate_prompts=false refuses only the prompts true would cut, so every video it makes is the one true makes
NOT_SETTINGS = ("progress", "batch_size", "offload", "small_device", "truncate_prompts")
# keys newer than some records: the value those records' videos were made with (torch's default matmul precision
# was "highest": no TF32)
ADDED = {"encoders": "device", "vae_tiling": False, "attention": None, "compile": False, "prompt_recipe": None,
         "vlm_dtype": None, "noise": "per_prompt", "rank_seed_stride": 0, "video": "nexus"}


def settings(cfg: DictConfig) -> dict:
    s = OmegaConf.to_container(cfg, resolve=True)
    return {"bridge": s["bridge"], "sampling": {k: v for k, v in s["sampling"].items() if k not in NOT_SETTINGS},
            "tf32": s["tf32"]}


def _folder(path: str | None, parts: tuple[str, ...] = ()) -> dict | None:
    """{"path", "fingerprint"} of a weights folder (only `parts` of it, when given), None when unused."""
    if not path:
        return None
    root = Path(path)
    targets = [root / p for p in parts if (root / p).exists()] if parts else [root]
    return {"path": str(root.resolve()), "fingerprint": "+".join(fingerprint(t) for t in targets)}


def weights(cfg: DictConfig) -> dict:
    """Which weights make the videos: what the strategy uses, identified by content."""
    p, strategy = cfg.paths, cfg.bridge.strategy
    export = cfg.small.export if strategy != "large_only" else None
    out = {"small": _folder(p.small),          # its VAE and UMT5 serve every strategy
           "large": _folder(p.large, ("transformer", "transformer_2", "model_index.json"))
           if strategy != "small_only" else None,
           "vlm": _folder(p.vlm) if export else None, "export": None}
    if export:
        src = Path(export)
        is_folder = (src / "connector").is_dir()
        out["export"] = {"source": str(src.resolve()), "kind": "export" if is_folder else "checkpoint",
                         "id": content_sha256(src) if is_folder else fingerprint(src)}
    return out


WEIGHT_KEYS = {"small": "paths.small", "large": "paths.large", "vlm": "paths.vlm", "export": "small.export"}


def _identity(record: dict) -> dict:
    """What must match for two commands to share a folder: the settings and the weights' content ids, under
    the config keys that name those weights."""
    w = {WEIGHT_KEYS[k]: (v or {}).get("fingerprint") or (v or {}).get("id") for k, v in record["weights"].items()}
    s = record["settings"]
    return {"tf32": False, **s, "sampling": {**ADDED, **s.get("sampling", {})}, **w}


def new_record(cfg: DictConfig) -> dict:
    return {"settings": settings(cfg), "weights": weights(cfg), "created": now(), "git": git_state(), "launches": []}


def videos(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob("*.mp4"))


def read_manifest(out_dir: Path) -> dict[str, str]:
    f = Path(out_dir) / MANIFEST
    if not f.is_file():
        return {}
    rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return {r["id"]: r["prompt"] for r in rows}


def check_folder(out_dir: str | Path, record: dict, prompts: list[Prompt], overwrite: bool = False) -> dict | None:
    """Refuse a folder made with other settings (or other prompt texts); -> the folder's record, or None when
    the folder is new (or will be cleared by overwrite). Reads only."""
    out_dir = Path(out_dir)
    old, made = read_json(out_dir / RECORD), videos(out_dir)
    if overwrite or not made:       # nothing to keep apart (a folder whose first command failed holds no video)
        return None
    way_out = (f"sample into another folder (run.name=<name> or out_dir=<folder>), or pass overwrite=true to delete "
               f"its {len(made)} videos and sample afresh")
    if old is None:
        raise UserError(f"{out_dir} holds {len(made)} videos but no record of what made them ({RECORD}): {way_out}")
    diffs = differences(_identity(old), _identity(record))
    if diffs:
        raise UserError(f"{out_dir} holds videos made with other settings ({describe(diffs)}; weights compare by "
                        f"content): {way_out}")
    texts = read_manifest(out_dir)
    clash = [p for p in prompts if p.id in texts and texts[p.id] != p.text]
    if clash:
        p = clash[0]
        raise UserError(f"{out_dir} holds the video of prompt id {p.id} for another text ({texts[p.id]!r}, now "
                        f"{p.text!r}){f' and {len(clash) - 1} more' if len(clash) > 1 else ''}: {way_out}")
    return old


def claim_folder(out_dir: str | Path, record: dict, prompts: list[Prompt], old: dict | None,
                 overwrite: bool = False) -> dict:
    """Carry out check_folder's verdict (rank 0): clear the folder for overwrite, write the record (with this
    launch) and the merged prompt manifest. -> the record as written."""
    out_dir = Path(out_dir)
    if old is None:                 # a new folder, or one made anew: nothing of an earlier record carries over
        for f in videos(out_dir) if overwrite else []:
            f.unlink()
        for name in (RECORD, MANIFEST):
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "eval", ignore_errors=True)      # scores of deleted videos
    out_dir.mkdir(parents=True, exist_ok=True)
    rec = {**record, "created": old["created"], "launches": old.get("launches", [])} if old else dict(record)
    rec["launches"] = [*rec["launches"], {"time": now(), "command": command_line(), "prompts": len(prompts),
                                          "overwrite": bool(overwrite)}]
    write_json(out_dir / RECORD, rec)
    texts = {**read_manifest(out_dir), **{p.id: p.text for p in prompts}}
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text("".join(json.dumps({"id": i, "prompt": t}) + "\n" for i, t in texts.items()))
    tmp.replace(out_dir / MANIFEST)
    return rec


def note_export(out_dir: str | Path, record: dict, export: Path) -> None:
    """Add the content sha256 (and the checkpoint's step) of the export made from a checkpoint to the record."""
    info = read_json(export / "nexus.json") or {}
    record["weights"]["export"] |= {"export_folder": str(export.resolve()), "content_sha256": content_sha256(export),
                                    "global_step": info.get("global_step")}
    write_json(Path(out_dir) / RECORD, record)
