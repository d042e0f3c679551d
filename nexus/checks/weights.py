"""Checkpoints and weights recognised without loading them: a Lightning checkpoint's keys read from its pickle
without running it, safetensors / torch weights by their magic number, model folders. (nexus.checks)"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

from nexus.checks.files import _problem, existing_file, file_kind


LIGHTNING_KEYS = ("pytorch-lightning_version", "state_dict")
WEIGHT_KINDS = ("safetensors", "torch")


class _Stub:
    """Whatever a pickle names (a class, a tensor rebuild): built from its arguments, which it keeps, never run."""
    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):
        return _Stub()


_REAL = {("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bytes",
                                    "bytearray", "complex", "bool", "slice", "range")} | {
    ("collections", "OrderedDict"), ("__builtin__", "set")}


class _KeysUnpickler(pickle.Unpickler):
    """Reads a pickle's structure without importing or running anything it names, and without tensor data."""
    def find_class(self, module, name):
        if (module, name) in _REAL:
            return super().find_class(module, name)
        return type(name, (_Stub,), {})

    def persistent_load(self, pid):
        return None


def _top_keys(data) -> list[str] | None:
    return [str(k) for k in data] if isinstance(data, dict) else None


def torch_file_keys(path: str | Path) -> list[str] | None:
    """The top-level keys of a torch.save'd dict, read from its pickle alone (cheap: no tensor is read); None
    when the file holds no dict. Raises ValueError when it is not a torch file at all."""
    p = Path(path)
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            name = next((n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl")), None)
            if name is None:
                raise ValueError("a zip archive without data.pkl")
            with z.open(name) as f:
                return _top_keys(_KeysUnpickler(f).load())
    with open(p, "rb") as f:
        if f.read(1) != b"\x80":
            raise ValueError("not a torch file")
        f.seek(0)
        u = _KeysUnpickler(f)
        magic = u.load()
        if isinstance(magic, int):          # the legacy format: magic number, protocol, system info, the object
            u.load()
            u.load()
            return _top_keys(u.load())
        return _top_keys(magic)


def checkpoint_problem(path: str | Path) -> str | None:
    """Why `path` is not a Lightning checkpoint (None when it is one), without loading it: a file in torch's
    format whose dict holds Lightning's keys, or a DeepSpeed folder with its `latest` tag and model states."""
    p = Path(path)
    if not p.exists():
        return "broken symbolic link" if p.is_symlink() else "no such file or folder"
    if p.is_dir():
        if not (p / "latest").is_file():
            return "a folder without DeepSpeed's 'latest' tag (not a checkpoint)"
        tag = (p / "latest").read_text().strip()
        states = sorted((p / tag).glob("*model_states.pt")) if tag and (p / tag).is_dir() else []
        if not states:     # written by Lightning's DeepSpeed strategy: <tag>/mp_rank_00_model_states.pt
            return f"a DeepSpeed folder whose tag {tag!r} has no model states ({tag}/mp_rank_00_model_states.pt)"
        target, where = states[0], f"{tag}/{states[0].name}"
    else:
        target, where = p, "it"
    try:
        keys = torch_file_keys(target)
    except (ValueError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, AttributeError,
            ImportError, IndexError, TypeError, KeyError):
        kind = file_kind(target)
        return (f"not a checkpoint ({kind})" if kind else
                "not a checkpoint (neither torch's zip format nor a DeepSpeed folder)")
    if keys is None:
        return f"not a Lightning checkpoint ({where} is a torch file that holds no dict)"
    missing = [k for k in LIGHTNING_KEYS if k not in keys]
    if missing and not (p.is_dir() and missing == ["state_dict"]):      # DeepSpeed keeps the weights apart
        shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
        return (f"not a Lightning checkpoint ({where} is a torch file without {' or '.join(repr(m) for m in missing)}; "
                f"its keys: {shown or 'none'})")
    return None


def lightning_checkpoint(key: str, path, expected: str = "give a checkpoint Lightning wrote, e.g. "
                                                          "runs/<recipe>/<run>/checkpoints/last.ckpt") -> Path:
    problem = checkpoint_problem(path)
    if problem:
        raise _problem(key, path, problem, expected)
    return Path(path)


def weights_kind(path: str | Path) -> str | None:
    """'safetensors' or 'torch' by the file's magic number; None for anything else."""
    kind = file_kind(path)
    if kind == "a safetensors file":
        return "safetensors"
    if kind in ("a torch file (zip format)", "a pickle (torch's legacy format)"):
        return "torch"
    return None


def weights_file(key: str, path, kinds: tuple[str, ...] = WEIGHT_KINDS, expected: str | None = None) -> Path:
    """A weights file of one of `kinds` (safetensors, torch), told by its first bytes, not its name."""
    expected = expected or f"give a {' or '.join(kinds)} weights file"
    p = existing_file(key, path, expected)
    got = weights_kind(p)
    if got not in kinds:
        what = file_kind(p) or ("a text file" if _is_text(p) else "not a weights file")
        raise _problem(key, path, what if got is None else f"a {got} file", expected)
    return p


def weights_folder(key: str, path, expected: str) -> Path:
    """A model folder in the transformers/diffusers layout: a folder holding config.json."""
    p = Path(path)
    if not p.exists():
        raise _problem(key, path, "no such folder", expected)
    if not p.is_dir():
        what = file_kind(p) or ("a text file" if _is_text(p) else "a file")
        raise _problem(key, path, f"{what}, not a folder", expected)
    if not (p / "config.json").is_file():
        raise _problem(key, path, "a folder without config.json", expected)
    return p


def _is_text(p: Path) -> bool:
    try:
        p.read_bytes()[:4096].decode("utf-8")
        return True
    except (UnicodeDecodeError, OSError):
        return False
