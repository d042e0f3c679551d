"""Output paths that can be written (no ancestor is a file, the folder is writable), and devices this machine has.
(nexus.checks)"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from nexus.checks.files import named
from nexus.errors import UserError


def _nearest_existing(p: Path) -> Path:
    p = Path(os.path.abspath(p))
    while not os.path.lexists(p) and p.parent != p:
        p = p.parent
    return p


def _writable(folder: Path) -> str | None:
    """None when a file can be created in `folder` (tried: creating and removing a temporary file)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".nexus-write-check-", dir=folder)
    except OSError as e:
        return f"{folder} is not writable ({e.strerror or type(e).__name__})"
    os.close(fd)
    os.unlink(name)
    return None


def _folder_problem(path: Path) -> str | None:
    p = Path(path)
    if os.path.lexists(p) and not p.exists():
        return f"{p} is a broken symbolic link"
    if p.exists():
        if not p.is_dir():
            return f"{p} is a file, not a folder"
        return _writable(p)
    base = _nearest_existing(p)
    if not base.exists():                       # an ancestor is a dangling link
        return f"{base} is a broken symbolic link"
    if not base.is_dir():
        return f"{base} is a file, not a folder"
    return _writable(base)


def output_folder(key: str, path) -> Path:
    """The folder a tool writes into: it exists or can be made (no ancestor is a file; the nearest existing
    ancestor is writable). Creates nothing (a temporary file is made and removed to test writing)."""
    if path is None or str(path) == "":
        raise UserError(f"{key} is empty: give the folder to write into")
    problem = _folder_problem(Path(str(path)))
    if problem:
        raise UserError(f"{named(key, path)}: {problem}; choose another {key}")
    return Path(str(path))


def output_file(key: str, path) -> Path:
    """A file a tool writes: its folder passes output_folder and the path itself is not a folder."""
    if path is None or str(path) == "":
        raise UserError(f"{key} is empty: give the file to write")
    p = Path(str(path))
    if p.is_dir():
        raise UserError(f"{named(key, path)}: {p} is a folder, not a file; give a file path for {key}")
    if os.path.lexists(p) and not p.exists():
        raise UserError(f"{named(key, path)}: {p} is a broken symbolic link; choose another {key}")
    problem = _folder_problem(p.parent)
    if problem is None and p.is_file() and not os.access(p, os.W_OK):
        problem = f"{p} is read-only"
    if problem:
        raise UserError(f"{named(key, path)}: {problem}; choose another {key}")
    return p


def device(key: str, value: str | None, auto: bool = True) -> str | None:
    """A torch device that exists here: cpu, cuda, cuda:N, mps, or None (and 'auto' when `auto`). Imports torch
    only where its build has GPU support."""
    if value is None or (auto and value == "auto"):
        return value
    m = re.fullmatch(r"(cpu|cuda|mps|meta)(?::(\d+))?", str(value))
    if not m:
        raise UserError(f"{named(key, value)}: not a device; use {'auto, ' if auto else ''}cpu, cuda or cuda:<index>")
    if m.group(1) == "cuda":
        n = cuda_devices()
        if n == 0:
            raise UserError(f"{named(key, value)}: this machine has no CUDA device (torch.cuda.is_available() is "
                            f"False); use {named(key, 'cpu')}" + (f" or {named(key, 'auto')}" if auto else ""))
        if m.group(2) is not None and int(m.group(2)) >= n:
            raise UserError(f"{named(key, value)}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    return value


def _torch_build_without_gpu() -> bool:
    """True when the installed torch is a CPU-only build (its version.py says cuda = hip = None): no import."""
    import importlib.util
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return True
    try:
        text = (Path(spec.origin).parent / "version.py").read_text()
    except OSError:
        return False
    return all(re.search(rf"^{k}\s*(?::[^=]*)?=\s*None\s*$", text, re.M) for k in ("cuda", "hip"))


def cuda_devices() -> int:
    """How many CUDA devices torch sees (0 without importing torch for a CPU-only build)."""
    if _torch_build_without_gpu():
        return 0
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0
