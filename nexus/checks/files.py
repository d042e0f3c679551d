"""What an input file is (by its magic bytes, not its name), and inputs read as what they should be: text, JSON,
JSON lines with required fields. (nexus.checks)"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from nexus.errors import UserError


def named(key: str, value) -> str:
    """`key=value` for a config key, `--flag value` for a flag."""
    return f"{key} {value}" if str(key).startswith("-") else f"{key}={value}"


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
