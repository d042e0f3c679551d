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


def _vrbench(data: dict, source: Path) -> list[Prompt]:
    out = []
    for category in data.values():
        if not isinstance(category, dict) or "prompts" not in category:
            raise ValueError(f"{source}: not a VR-Bench file (each top-level entry needs a 'prompts' list)")
        out += [Prompt(c["id"], c["prompt_en"]) for c in category["prompts"]]
    return out


def load_prompts(prompt: str | None = None, prompt_file: str | None = None) -> list[Prompt]:
    if bool(prompt) == bool(prompt_file):
        raise ValueError("give exactly one of prompt='a cat jumps ...' or prompt_file=path (.txt, .jsonl, VR-Bench .json "
                         "or a folder of VR-Bench .json files)")
    if prompt:
        return [Prompt(f"00000-{slug(prompt)}", prompt)]
    path = Path(prompt_file)
    if not path.exists():
        raise FileNotFoundError(f"prompt_file={prompt_file}: no such file or folder")
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise ValueError(f"prompt_file={prompt_file}: a folder must hold VR-Bench .json files; it holds none")
        prompts = [p for f in files for p in _vrbench(json.loads(f.read_text()), f)]
    elif path.suffix == ".json":
        prompts = _vrbench(json.loads(path.read_text()), path)
    elif path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        prompts = [Prompt(str(r.get("id") or f"{i:05d}-{slug(r['prompt'])}"), r["prompt"]) for i, r in enumerate(rows)]
    else:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        prompts = [Prompt(f"{i:05d}-{slug(t)}", t) for i, t in enumerate(lines)]
    if not prompts:
        raise ValueError(f"prompt_file={prompt_file} holds no prompts")
    return unique_ids(prompts)


def unique_ids(prompts: list[Prompt]) -> list[Prompt]:
    """A repeated id gets _2, _3, ... (the public VR-Bench files hold ETV_022 twice, for two different cases)."""
    seen: dict[str, int] = {}
    out = []
    for p in prompts:
        seen[p.id] = seen.get(p.id, 0) + 1
        out.append(p if seen[p.id] == 1 else Prompt(f"{p.id}_{seen[p.id]}", p.text))
    return out
