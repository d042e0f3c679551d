"""Checks of what a tool is given, made before any work: output paths that can be written, input files of the
right kind, and argparse `type=` functions for counts, sizes and numbers. Each failure is a UserError naming the
key or flag, the value, what is wrong and what to change (nexus.errors: one line, exit code 2).

Light on purpose (the standard library; omegaconf for configs; torch only to count CUDA devices on a GPU build):
the tools call these right after reading their arguments, before torch or any model loads, so a mistake costs a
second, not a model load.

  output_folder(key, path)            a folder that exists or can be made (no ancestor is a file, writable)
  output_file(key, path)              a file that can be written (its folder passes output_folder)
  json_file / jsonl_file / text_file  an input file that reads as what it should be (file_kind names the others)
  lightning_checkpoint(key, path)     a Lightning checkpoint (file or DeepSpeed folder), without loading it
  weights_file / weights_folder       a safetensors / torch weights file by its magic number; a model folder
  device(key, value)                  a torch device this machine has
  ArgumentParser, positive_int, nonnegative_int, finite_float, positive_float, fraction, devices, choices_of ...
                                      argparse with one-line errors, and its type= functions
  slurm_time(key, value)              a SLURM time limit
  fit_/sample_/evaluate_/watch_inputs_outputs(cfg)   what each Hydra tool reads and writes, checked first
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import re
import sys
import tempfile
import zipfile
from pathlib import Path

from nexus.errors import UserError

LIGHTNING_KEYS = ("pytorch-lightning_version", "state_dict")
WEIGHT_KINDS = ("safetensors", "torch")


def named(key: str, value) -> str:
    """`key=value` for a config key, `--flag value` for a flag."""
    return f"{key} {value}" if str(key).startswith("-") else f"{key}={value}"


# ---- what a file is ---------------------------------------------------------------------------------------------
def file_kind(path: str | Path) -> str | None:
    """What a file is, when its first bytes tell (None: nothing recognised, e.g. plain text)."""
    p = Path(path)
    if p.is_dir():
        return "a folder"
    try:
        with open(p, "rb") as f:
            head = f.read(16)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    if not head:
        return "an empty file"
    if head[4:8] == b"ftyp":
        return "a QuickTime video" if head[8:12] == b"qt  " else "an MP4 video"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "a Matroska/WebM video"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI video"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "a PNG image"
    if head[:3] == b"\xff\xd8\xff":
        return "a JPEG image"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "a GIF image"
    if head[:2] == b"\x1f\x8b":
        return "a gzip file"
    if head[:4] == b"PK\x03\x04":
        return "a torch file (zip format)" if _torch_zip(p) else "a zip archive"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle (torch's legacy format)"
    if _safetensors_header(head, size):
        return "a safetensors file"
    if size > 262 and _tar(p):
        return "a tar archive"
    return None


def _torch_zip(p: Path) -> bool:
    try:
        with zipfile.ZipFile(p) as z:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _safetensors_header(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _tar(p: Path) -> bool:
    with open(p, "rb") as f:
        f.seek(257)
        return f.read(5) == b"ustar"


def _problem(key: str, path, what: str, expected: str) -> UserError:
    return UserError(f"{named(key, path)}: {what}; {expected}")


def existing_file(key: str, path, expected: str) -> Path:
    """The path is an existing regular file (not a folder)."""
    p = Path(path)
    if not p.exists():
        raise _problem(key, path, "no such file", expected)
    if p.is_dir():
        raise _problem(key, path, "a folder, not a file", expected)
    return p


def text_of(key: str, path, expected: str) -> str:
    """The file's text; a binary file is named for what it is."""
    p = existing_file(key, path, expected)
    kind = file_kind(p)
    if kind and kind != "an empty file":
        raise _problem(key, path, f"{kind}, not a text file", expected)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise _problem(key, path, f"not UTF-8 text (byte {e.start})", expected) from None


def _json_error(e: json.JSONDecodeError) -> str:
    return f"line {e.lineno} column {e.colno}: {e.msg}"


def json_file(key: str, path, expected: str = "give a JSON file"):
    """The parsed content of a JSON file; else a UserError naming the line and what the parser expected."""
    text = text_of(key, path, expected)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _problem(key, path, f"not JSON: {_json_error(e)}", expected) from None


def jsonl_file(key: str, path, required_fields: tuple[str, ...] = (), expected: str | None = None) -> list[dict]:
    """The rows of a JSON-lines file (one object per non-empty line), each holding `required_fields`."""
    need = ", ".join(f'"{f}"' for f in required_fields)
    expected = expected or ("give a JSONL file: one JSON object per line" + (f" with {need}" if need else ""))
    rows = []
    for i, line in enumerate(text_of(key, path, expected).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise _problem(key, path, f"not JSON lines: line {i} column {e.colno}: {e.msg}", expected) from None
        if not isinstance(row, dict):
            raise _problem(key, path, f"line {i} is {type(row).__name__}, not a JSON object", expected)
        missing = [f for f in required_fields if f not in row]
        if missing:
            raise _problem(key, path, f"line {i} has no {', '.join(repr(m) for m in missing)} field", expected)
        rows.append(row)
    return rows


def text_file(key: str, path, expected: str = "give a text file") -> str:
    return text_of(key, path, expected)


# ---- checkpoints and weights ----------------------------------------------------------------------------------
class _Stub:
    """Whatever a pickle names (a class, a tensor rebuild): built, never run."""
    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

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


# ---- output paths ----------------------------------------------------------------------------------------------
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


# ---- argparse ---------------------------------------------------------------------------------------------------
class ArgumentParser(argparse.ArgumentParser):
    """argparse with the tools' one-line errors, exit code 2 and no usage block: `error: argument --steps 0: at
    least 1 (a whole number)`. A type= function raises ArgumentTypeError with the reason; the flag and the value
    given are put in front of it."""

    def _get_value(self, action, arg_string):
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError as e:
            flag = "/".join(action.option_strings) or action.metavar or action.dest
            raise argparse.ArgumentError(None, f"argument {flag} {arg_string}: {e.message}") from None

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr, flush=True)
        sys.exit(2)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a whole number") from None


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError("not a finite number")
    return v


def positive_int(text: str) -> int:
    """type=: a whole number >= 1 (counts, sizes, steps)."""
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("at least 1 (a whole number)")
    return v


def nonnegative_int(text: str) -> int:
    """type=: a whole number >= 0 (workers, warm-up steps)."""
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError("at least 0 (a whole number)")
    return v


def finite_float(text: str) -> float:
    """type=: any finite number (no nan, inf)."""
    return _float(text)


def positive_float(text: str) -> float:
    """type=: a finite number > 0."""
    v = _float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def nonnegative_float(text: str) -> float:
    """type=: a finite number >= 0."""
    v = _float(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def fraction(text: str) -> float:
    """type=: a number in [0, 1]."""
    v = _float(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return v


def float_in(lo: float, hi: float):
    """type= for a finite number in [lo, hi]."""
    def check(text: str) -> float:
        v = _float(text)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo:g} and {hi:g}")
        return v
    check.__name__ = f"number in [{lo:g}, {hi:g}]"
    return check


def auto_or_positive_int(text: str) -> int | str:
    """type=: 'auto' or a whole number >= 1 (e.g. threads)."""
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"auto or {e}") from None


def devices(text: str) -> int | str:
    """type=: Lightning's devices: 'auto', a count >= 1, -1 (all), or device indices '0,1,3'."""
    if text == "auto":
        return text
    if re.fullmatch(r"-?\d+", text):
        v = int(text)
        if v >= 1 or v == -1:
            return v
    elif re.fullmatch(r"\d+(,\d+)*,?", text):
        return text
    raise argparse.ArgumentTypeError("give a number of devices >= 1, auto, -1 (all) or device indices such as 0,1")


class choices_of:
    """argparse choices= read from a (heavy) module only when a value is checked or --help is printed; give the
    argument a metavar so that an error's message does not list (and import) them."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def _values(self):
        import importlib
        return tuple(getattr(importlib.import_module(self.module), self.name))

    def __contains__(self, value):
        return value in self._values()

    def __iter__(self):
        return iter(self._values())

    def __len__(self):
        return len(self._values())


# ---- SLURM ------------------------------------------------------------------------------------------------------
_SLURM_TIME = re.compile(r"^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}|\d+-\d+:\d{1,2}:\d{1,2})$")


def slurm_time(key: str, value) -> str:
    """A SLURM time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (or UNLIMITED)."""
    text = str(value).strip()
    if text.upper() in ("UNLIMITED", "INFINITE") or _SLURM_TIME.match(text):
        return text
    raise UserError(f"{named(key, value)}: not a SLURM time; use minutes (90), MM:SS, HH:MM:SS (48:00:00), D-HH, "
                    f"D-HH:MM or D-HH:MM:SS (2-00:00:00)")


# ---- what each Hydra tool reads and writes, checked before the task imports anything heavy --------------------
def _get(cfg, key: str, default=None):
    from omegaconf import OmegaConf
    return OmegaConf.select(cfg, key, default=default)


def _is_under(path, root) -> bool:
    try:
        return Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(root)))
    except (TypeError, ValueError):
        return False


def run_folder(folder_key: str, folder, root_key: str | None = None, root=None) -> Path:
    """A run's output folder; when it lies under `root` (run.root) a problem there is said of root_key."""
    if root_key and root is not None and _is_under(folder, root):
        output_folder(root_key, root)
    return output_folder(folder_key, folder)


def tiny_models_folder(cfg, key: str = "paths.tiny_models") -> None:
    """paths.tiny_models: built there when missing (an existing folder is only read)."""
    path = _get(cfg, key)
    if path and not Path(str(path)).is_dir():
        output_folder(key, path)


NETWORK_FOLDERS = {"clip": "a CLIPModel folder (transformers layout, with config.json)",
                   "clip_large": "a CLIPModel folder (transformers layout, with config.json)",
                   "dino": "a ViTModel (DINO) folder (transformers layout, with config.json)"}


def metric_networks(cfg, prefix: str = "metrics") -> None:
    """metrics.networks.<name>: a model folder (CLIP, DINO) or the aesthetic head's weights file; metrics.device."""
    networks = _get(cfg, f"{prefix}.networks") or {}
    for name in list(networks.keys()):
        path = networks.get(name)
        if not path:
            continue
        key = f"{prefix}.networks.{name}"
        if name in NETWORK_FOLDERS:
            weights_folder(key, path, f"give {NETWORK_FOLDERS[name]}, or null to report its dimensions unavailable")
        elif name == "aesthetic_head":
            weights_file(key, path, WEIGHT_KINDS, "give the LAION linear head (.pth or .safetensors), e.g. "
                                                  "sa_0_4_vit_l_14_linear.pth, or null")
    if _get(cfg, f"{prefix}.device") is not None:
        device(f"{prefix}.device", _get(cfg, f"{prefix}.device"))


def prompts_input(key: str, prompt=None, prompt_file=None, **kw):
    """The prompts of prompt=/prompt_file= (or manifest=), read and checked now (a light module)."""
    from nexus.inference.prompts import load_prompts
    return load_prompts(prompt, prompt_file, key=key, **kw)


def export_or_checkpoint(key: str, path) -> None:
    """small.export: an export folder (connector/, ...) or a stage-1 checkpoint."""
    if not path or (Path(str(path)) / "connector").is_dir():
        return
    problem = checkpoint_problem(path)
    if problem:      # FileNotFoundError, as nexus.inference.launch has always said it (a user's error: one line)
        raise FileNotFoundError(f"{named(key, path)}: {problem}, and not an export folder (connector/, transformer/ ...): "
                        f"pass tools/export.py's output or a stage-1 checkpoint such as "
                        f"runs/<recipe>/<run>/checkpoints/last.ckpt")


def fit_inputs_outputs(cfg) -> None:
    """tools/fit.py: run.dir (under run.root), paths.tiny_models, run.resume=<checkpoint>, eval.prompt_file."""
    run_folder("run.dir", _get(cfg, "run.dir"), "run.root", _get(cfg, "run.root"))
    tiny_models_folder(cfg)
    resume = _get(cfg, "run.resume")
    if resume not in (None, "auto", "never"):
        lightning_checkpoint("run.resume", resume, "use auto, never or the path of a checkpoint Lightning wrote "
                                                   "(runs/<recipe>/<run>/checkpoints/last.ckpt)")
    if _get(cfg, "model.null_features"):
        weights_file("model.null_features", _get(cfg, "model.null_features"), ("safetensors",),
                     "give the null.safetensors that tools/precompute.py wrote beside the feature shards")
    if _get(cfg, "eval.enabled"):
        if _get(cfg, "eval.prompt_file"):
            prompts_input("eval.prompt_file", None, _get(cfg, "eval.prompt_file"))
        metric_networks(cfg, "eval.metrics")


def sample_inputs_outputs(cfg) -> None:
    """tools/sample.py: the prompts, small.export, out_dir (under run.root), paths.tiny_models."""
    prompts_input("prompt_file", _get(cfg, "prompt"), _get(cfg, "prompt_file"))
    if _get(cfg, "bridge.strategy") != "large_only":
        export_or_checkpoint("small.export", _get(cfg, "small.export"))
    run_folder("out_dir", _get(cfg, "out_dir"), "run.root", _get(cfg, "run.root"))
    tiny_models_folder(cfg)


def evaluate_inputs_outputs(cfg) -> None:
    """tools/evaluate.py: manifest=, the metric networks and device, out= (scores, evaluate.log), tiny models."""
    if _get(cfg, "manifest"):
        prompts_input("manifest", None, _get(cfg, "manifest"))
    metric_networks(cfg)
    if Path(str(_get(cfg, "videos"))).is_dir():      # else evaluate says videos= does not exist
        output_folder("out", _get(cfg, "out"))
    tiny_models_folder(cfg)


def watch_inputs_outputs(cfg) -> None:
    """tools/watch_eval.py: run_dir (its checkpoints/ read, eval_watch/ written), the prompts, metrics, tiny models."""
    run_dir = Path(str(_get(cfg, "run_dir")))
    if not (run_dir / "checkpoints").is_dir():
        raise UserError(f"run_dir={run_dir}: no checkpoints/ folder; point it at a stage-1 run directory "
                        f"(runs/<recipe>/<run name>)")
    if _get(cfg, "prompt_file"):
        prompts_input("prompt_file", None, _get(cfg, "prompt_file"))
    metric_networks(cfg)
    problem = _folder_problem(run_dir / "eval_watch")
    if problem:
        raise UserError(f"run_dir={run_dir}: {problem} (the watcher writes eval_watch/ there); choose another run_dir")
    tiny_models_folder(cfg)
