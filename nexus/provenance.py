"""What produced an output: the code (git commit), the command, the settings, and the identity of the weights.

Weights are identified by content. An export folder (connector + small generator) gets a full sha256; a stock
model folder (tens of GB) or a training checkpoint gets a sampled fingerprint: the sha256 of every file's
relative path, size, first and last MiB, which tells two different fine-tunes of one architecture apart
without reading 28 GB.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_MIB = 1 << 20


def git_state(root: Path = ROOT) -> dict:
    """{"commit": sha or None, "dirty": bool or None} of the code that runs (None outside a git checkout)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = None
        if commit:
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout
            dirty = bool(status.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]])


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def _hash_files(path: Path, sampled: bool) -> str:
    h = hashlib.sha256()
    root = Path(path)
    for f in _files(root):
        size = f.stat().st_size
        h.update(f"{f.relative_to(root) if root.is_dir() else f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if not sampled or size <= 2 * _MIB:
                for block in iter(lambda: fh.read(8 * _MIB), b""):
                    h.update(block)
            else:
                h.update(fh.read(_MIB))
                fh.seek(size - _MIB)
                h.update(fh.read(_MIB))
    return h.hexdigest()


def content_sha256(path: str | Path) -> str:
    """sha256 over every file of a folder (relative path, size, bytes), or of one file."""
    return _hash_files(Path(path), sampled=False)


def fingerprint(path: str | Path) -> str:
    """The sampled fingerprint of a file or folder (module docstring): 16 hex digits."""
    return _hash_files(Path(path), sampled=True)[:16]


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def covered(key: str, prefixes: tuple[str, ...]) -> bool:
    """Whether a dotted key is one of `prefixes` (a prefix ending in '.' covers a section, else the exact key)."""
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in prefixes)


def differences(old: dict, new: dict, ignore: tuple[str, ...] = ()) -> list[tuple[str, object, object]]:
    """(key, old value, new value) for every dotted key that differs, except the keys `covered` by `ignore`."""
    a, b = flatten(old), flatten(new)
    missing = object()
    out = []
    for k in sorted(set(a) | set(b)):
        if covered(k, ignore):
            continue
        va, vb = a.get(k, missing), b.get(k, missing)
        if va != vb:
            out.append((k, None if va is missing else va, None if vb is missing else vb))
    return out


def describe(diffs: list[tuple[str, object, object]], limit: int = 8) -> str:
    """'model.lr: 0.001 -> 0.0001, ...' (the first `limit`)."""
    shown = [f"{k}: {json.dumps(a, default=str)} -> {json.dumps(b, default=str)}" for k, a, b in diffs[:limit]]
    more = f" (and {len(diffs) - limit} more)" if len(diffs) > limit else ""
    return ", ".join(shown) + more


def write_json(path: str | Path, data: dict) -> None:
    """Atomically: a reader sees the old file or the new one, never half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: str | Path) -> dict | None:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None
