"""Prompt sources for sampling: one prompt, a .txt file (one per line), a .jsonl file ({"prompt", "id"?}
per line), or the VR-Bench JSON (a file or a folder of them: {category: {"prompts": [{"id", "prompt_en"}]}})."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Prompt:
    id: str          # file name stem of the video: stable across runs, so finished prompts are skipped
    text: str


def slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:n].rstrip("-") or "prompt"


def vrbench_files(path: Path) -> list[Path]:
    """A VR-Bench .json file, or the .json files of a folder in name order (the order ids are made unique in)."""
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("*.json"))
    if not files:
        raise ValueError(f"{path}: a folder must hold VR-Bench .json files; it holds none")
    return files


def vrbench_entries(data, source: Path) -> list:
    """The raw case entries of one VR-Bench file, in file order (nexus.evaluation.vrbench.cases validates them)."""
    categories = data.values() if isinstance(data, dict) else [None]
    if not all(isinstance(c, dict) and isinstance(c.get("prompts"), list) for c in categories):
        raise ValueError(f"{source}: not a VR-Bench file (each top-level entry needs a 'prompts' list)")
    return [entry for c in categories for entry in c["prompts"]]


def _vrbench(data: dict, source: Path) -> list[Prompt]:
    return [Prompt(c["id"], c["prompt_en"]) for c in vrbench_entries(data, source)]


def load_prompts(prompt: str | None = None, prompt_file: str | None = None, key: str = "prompt_file") -> list[Prompt]:
    """The prompts of prompt= or of a file; key: the name of the file's key or flag in messages (manifest, ...).
    A file of the wrong kind (an mp4, broken JSON, a JSONL line without "prompt") is a UserError naming it."""
    from nexus import checks
    if bool(prompt) == bool(prompt_file):
        raise ValueError("give exactly one of prompt='a cat jumps ...' or prompt_file=path (.txt, .jsonl, VR-Bench .json "
                         "or a folder of VR-Bench .json files)")
    if prompt:
        return [Prompt(f"00000-{slug(prompt)}", prompt)]
    path = Path(prompt_file)
    if not path.exists():
        raise FileNotFoundError(f"{checks.named(key, prompt_file)}: no such file or folder")
    if path.is_dir() or path.suffix == ".json":
        vr = "give a VR-Bench .json file ({category: {\"prompts\": [{\"id\", \"prompt_en\"}]}}) or a folder of them"
        prompts = []
        for f in vrbench_files(path):
            data = checks.json_file(key, f, vr)
            try:
                prompts += _vrbench(data, f)
            except (ValueError, KeyError, TypeError) as e:
                why = f"an entry has no {e}" if isinstance(e, KeyError) else str(e).removeprefix(f"{f}: ")
                raise checks.UserError(f"{checks.named(key, f)}: {why}; {vr}") from None
    elif path.suffix == ".jsonl":
        rows = checks.jsonl_file(key, path, ("prompt",),
                                 'give one JSON object per line with "prompt" (and optionally "id")')
        prompts = [Prompt(str(r.get("id") or f"{i:05d}-{slug(str(r['prompt']))}"), str(r["prompt"]))
                   for i, r in enumerate(rows)]
    else:
        text = checks.text_file(key, path, "give a .txt file (one prompt per line), a .jsonl file or VR-Bench .json")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        prompts = [Prompt(f"{i:05d}-{slug(t)}", t) for i, t in enumerate(lines)]
    if not prompts:
        raise ValueError(f"{checks.named(key, prompt_file)} holds no prompts")
    return unique_ids(prompts)


def unique_ids(prompts: list[Prompt]) -> list[Prompt]:
    """A repeated id gets _2, _3, ... (the public VR-Bench files hold ETV_022 twice, for two different cases)."""
    return [Prompt(i, p.text) for i, p in zip(unique_names([p.id for p in prompts]), prompts)]


def unique_names(ids: list[str]) -> list[str]:
    """The second `x` becomes `x_2`, the third `x_3`, ... (shared with the VR-Bench case reader)."""
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i}_{seen[i]}")
    return out
