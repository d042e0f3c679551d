"""Minimal webdataset shards: a writer, a shard-spec expander and a random-access index.

A shard is an uncompressed tar whose members are `<key>.<ext>`; consecutive members with the same key form
one sample {ext: bytes}. The index reads shards by offset instead of streaming them, so a map-style
dataset (and therefore a deterministic, resumable SampleStream) can sit on top of them.

`manifest.json` beside the shards (written by write_shards and tools/prepare_shards.py: per shard its file,
sample count, bytes and keys) says what each shard should hold, so the samples lost in a damaged shard are
counted, not just the ones that could still be found.
"""
from __future__ import annotations

import glob
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Iterable

import braceexpand
import webdataset as wds

from nexus.data.video import atomic_write

SPEC_FORMS = ("a directory (all *.tar in it)", "a glob (data/*.tar)",
              "brace notation (shard-{000000..000003}.tar)", "a list of these")
# webdataset's rules (tariterators): key = path up to the first dot of the basename, ext = the rest;
# `__name__` metadata members are skipped
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_META = re.compile(r"__[^/]*__($|/)")


def _encode(key: str, ext: str, value) -> bytes:
    if isinstance(value, dict):
        return json.dumps(value).encode("utf-8")
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"sample {key!r}: {ext!r} is {type(value).__name__}; give bytes, str or dict")


MANIFEST = "manifest.json"


def read_shard_manifest(folder: str | os.PathLike) -> dict[str, dict]:
    """{shard file name: {"samples", "bytes", "keys", ...}} from `folder/manifest.json`, or {}."""
    f = Path(folder) / MANIFEST
    try:
        return {e["file"]: e for e in json.loads(f.read_text()).get("shards", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def record_shards(folder: str | os.PathLike, entries: list[dict]) -> None:
    """Add (or replace, by file name) shard entries in `folder/manifest.json`, keeping its other fields."""
    f = Path(folder) / MANIFEST
    try:
        data = json.loads(f.read_text()) if f.is_file() else {}
    except ValueError:
        data = {}
    shards = {e["file"]: e for e in data.get("shards", [])} | {e["file"]: e for e in entries}
    data["shards"] = [shards[k] for k in sorted(shards)]
    with atomic_write(f) as out:
        out.write(json.dumps(data, indent=1).encode())


def write_shards(samples: Iterable[dict], out_dir: str | os.PathLike, prefix: str = "shard",
                 maxcount: int = 64) -> list[str]:
    """Write samples ({"__key__": str, ext: bytes | str | dict}) into `out_dir/prefix-NNNNNN.tar`, at most
    `maxcount` per shard, and list them in `out_dir/manifest.json`; returns the shard paths. Each shard is
    written under a temporary name and renamed once complete, so readers (and globs) never see a half-written
    shard."""
    if maxcount < 1:
        raise ValueError(f"maxcount must be >= 1, got {maxcount}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    entries: list[dict] = []
    it = iter(samples)
    sample = next(it, None)
    while sample is not None:   # open a shard only when a sample exists for it: no empty trailing shard
        path = out / f"{prefix}-{len(paths):06d}.tar"
        keys = []
        # the writer closes before the file, even on error (else its __del__ later writes to a closed file);
        # fixed mtime: the same samples give byte-identical shards
        with atomic_write(path) as f, wds.TarWriter(f, encoder=False, mtime=0.0) as writer:
            for _ in range(maxcount):
                key = sample["__key__"]
                writer.write({"__key__": key, **{ext: _encode(key, ext, v) for ext, v in sample.items()
                                                 if not ext.startswith("_")}})
                keys.append(key)
                sample = next(it, None)
                if sample is None:
                    break
        paths.append(str(path))
        entries.append({"file": path.name, "samples": len(keys), "bytes": path.stat().st_size, "keys": keys})
    if entries:
        record_shards(out, entries)
    return paths


def expand_shards(spec: str | os.PathLike | list) -> list[str]:
    """Shard spec -> sorted list of existing shard files; FileNotFoundError for a pattern that matches none."""
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not items:
        raise FileNotFoundError(f"empty shard spec; accepted forms: {', '.join(SPEC_FORMS)}")
    found: set[str] = set()
    for item in items:
        pattern = os.path.expanduser(os.fspath(item))
        if os.path.isdir(pattern):
            matches = glob.glob(os.path.join(glob.escape(pattern), "*.tar"))
        else:
            matches = [m for p in braceexpand.braceexpand(pattern) for m in glob.glob(p, recursive=True)
                       if os.path.isfile(m)]
        if not matches:
            raise FileNotFoundError(f"shard spec {os.fspath(item)!r} matched no file (cwd {os.getcwd()}); "
                                    f"accepted forms: {', '.join(SPEC_FORMS)}")
        found.update(matches)
    return sorted(found)


class ShardIndex:
    """Map-style view over the samples of uncompressed tar shards. Construction reads each tar's headers
    once; __getitem__ opens the shard, seeks and reads, keeping no file handle, so it is safe to use from
    forked DataLoader workers."""

    def __init__(self, urls: str | os.PathLike | Iterable[str | os.PathLike], on_error: str = "raise"):
        """on_error="skip": a damaged shard (unreadable, truncated, or holding fewer samples than its manifest
        lists) is reported in `bad_shards` (url, reason) and whatever samples were indexed whole before the
        damage are kept, instead of failing a long run. `unreachable` counts the samples lost in damaged
        shards: exactly when a manifest lists the shard's samples, else those whose data the damage cut."""
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error={on_error!r}: choose 'raise' or 'skip'")
        self.urls = [os.fspath(urls)] if isinstance(urls, (str, os.PathLike)) else [os.fspath(u) for u in urls]
        # per sample: (url index, key, {ext: (offset of data, size)})
        self._samples: list[tuple[int, str, dict[str, tuple[int, int]]]] = []
        self.bad_shards: list[tuple[str, str]] = []
        self.unreachable = 0
        manifests: dict[str, dict] = {}
        for u, url in enumerate(self.urls):
            folder = os.path.dirname(os.path.abspath(url))
            listed = manifests.setdefault(folder, read_shard_manifest(folder)).get(os.path.basename(url))
            before = len(self._samples)
            lost = 0
            try:
                cut, lost = self._scan(u, url)
            except (OSError, ValueError, EOFError, tarfile.TarError) as e:
                if on_error == "raise":
                    raise
                cut = f"{type(e).__name__}: {e}"
            found = len(self._samples) - before
            if listed and found < listed["samples"]:
                lost = listed["samples"] - found
                cut = (cut or "truncated") + f"; {found} of the {listed['samples']} samples its manifest lists are readable"
            self.unreachable += lost
            if cut:
                if on_error == "raise":
                    raise ValueError(f"{url}: damaged ({cut})")
                self.bad_shards.append((url, cut if listed else cut + "; no manifest.json lists its samples, so "
                                        "how many were lost behind the damage is unknown"))

    def _scan(self, u: int, url: str) -> tuple[str | None, int]:
        """Index one shard's whole samples; -> (why it is damaged (members cut short, no end-of-archive) or
        None, how many indexed samples it cut). A sample whose data the end of the file cuts is left out."""
        try:
            tar = tarfile.open(url, "r:")   # "r:" refuses compressed tars, which cannot be read by offset
        except tarfile.ReadError as e:
            raise ValueError(f"{url}: not an uncompressed tar ({e}); random access needs plain .tar") from e
        size = os.path.getsize(url)
        damage = None
        with tar:
            current = None
            try:
                for m in tar:
                    if not m.isreg() or _META.match(m.name):   # directories, links, metadata
                        continue
                    match = _KEY_EXT.match(m.name)
                    if match is None:   # no extension: webdataset ignores it too
                        continue
                    key, ext = match.group(1), match.group(2).lower()
                    if current is None or current[1] != key:
                        current = (u, key, {})
                        self._samples.append(current)
                    if ext in current[2]:
                        raise ValueError(f"{url}: duplicate member {m.name!r} in sample {key!r}")
                    current[2][ext] = (m.offset_data, m.size)
            except tarfile.ReadError as e:             # a header cut short: the samples before it stay
                damage = f"ReadError: {e}"
            end = tar.offset
            tar.members = []   # the headers are no longer needed
        last, lost = (self._samples[-1] if self._samples and self._samples[-1][0] == u else None), 0
        if last and any(offset + n > size for offset, n in last[2].values()):
            self._samples.pop()                         # its data runs past the end of the file
            lost = 1
            damage = damage or "truncated: the last sample's data is cut"
        if damage is None and size < end + 1024:        # a whole tar ends with two zero blocks
            damage = "truncated: no end-of-archive marker"
        return damage, lost

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def keys(self) -> list[str]:
        return [key for _, key, _ in self._samples]

    def members(self, i: int) -> set[str]:
        """The member extensions of sample i ("mp4", "json", "features.safetensors", ...), without reading them."""
        return set(self._samples[i][2])

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        u, key, members = self._samples[i]
        url = self.urls[u]
        out: dict = {"__key__": key, "__url__": url}
        with open(url, "rb") as f:
            for ext, (offset, size) in sorted(members.items(), key=lambda kv: kv[1][0]):
                f.seek(offset)
                data = f.read(size)
                if len(data) != size:
                    raise OSError(f"{url}: member {key}.{ext} truncated ({len(data)} of {size} bytes)")
                out[ext] = data
        return out

    def __repr__(self) -> str:
        return f"ShardIndex({len(self)} samples in {len(self.urls)} shards)"
