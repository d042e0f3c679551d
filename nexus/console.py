"""The console of a tool run: everything printed also goes to the run's log file (`fit.log`, `sample.log`,
`evaluate.log`), and known third-party noise is kept off it.

`capture()` replaces sys.stdout/sys.stderr before any library is imported (so the logging handlers that
Lightning, DeepSpeed and W&B create at import write through it too) and keeps what is printed in memory until
the tool knows its output folder; `attach_log(path)` then writes that and everything after into the file. A
run that fails before it has a folder leaves no file behind. In the file, progress-bar redraws are collapsed
to their last state and terminal colour codes are dropped.
"""
from __future__ import annotations

import io
import logging
import os
import re
import sys
import warnings
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Tee(io.TextIOBase):
    def __init__(self, stream, sink: "_LogSink"):
        self.stream, self.sink = stream, sink

    def write(self, s: str) -> int:
        self.stream.write(s)
        self.sink.write(s, id(self))
        return len(s)

    def flush(self) -> None:
        self.stream.flush()
        self.sink.flush()

    def isatty(self) -> bool:            # progress bars and colours behave as on the real terminal
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", "utf-8")


class _LogSink:
    """Buffers until a file is attached; writes whole lines (stdout's and stderr's apart, so a progress bar's
    unfinished line never swallows a message), each as its last carriage-return segment."""

    def __init__(self):
        self.pending, self.buffered, self.file = {}, [], None

    def write(self, s: str, stream: int = 0) -> None:
        text = self.pending.get(stream, "") + s
        if "\n" not in text:
            self.pending[stream] = text
            return
        *lines, self.pending[stream] = text.split("\n")
        for line in lines:
            line = _ANSI.sub("", line.rsplit("\r", 1)[-1]).rstrip()
            if self.file is None:
                self.buffered.append(line)
            else:
                self.file.write(line + "\n")

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def attach(self, path: Path) -> None:
        if self.file is not None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8", buffering=1)
        self.file.writelines(line + "\n" for line in self.buffered)
        self.buffered = []

    def close(self) -> None:
        if self.file is not None:
            for text in self.pending.values():
                if text.strip():
                    self.file.write(_ANSI.sub("", text.rsplit("\r", 1)[-1]).rstrip() + "\n")
            self.file.close()
            self.file = None


_sink: _LogSink | None = None


def capture() -> None:
    """Tee stdout/stderr into a new (not yet attached) log: each job of a sweep has its own. Only the global
    rank 0 process keeps a log file."""
    global _sink
    if _sink is not None:
        _sink.close()
        _sink.pending, _sink.buffered = {}, []
        return
    _sink = _LogSink()
    sys.stdout, sys.stderr = _Tee(sys.stdout, _sink), _Tee(sys.stderr, _sink)
    import atexit
    atexit.register(_sink.close)


def attach_log(path: str | Path) -> None:
    """Write the console of this run (from its start) into `path`; a no-op outside a tool or on ranks > 0."""
    if _sink is not None and _global_rank() == 0:
        _sink.attach(Path(path))


def _global_rank() -> int:
    from lightning.fabric.utilities.rank_zero import rank_zero_only     # the rank from the launcher's environment
    return getattr(rank_zero_only, "rank", 0)


# ---- third-party noise: messages that are not about the user's run -----------------------------------------
_NOISE = (
    "Setting accelerator to CPU",                          # DeepSpeed on a machine without CUDA
    "💡 Tip:",                                             # Lightning advertising litlogger / litmodels
    "enable_nested_tensor is True",                        # torch, for norm_first encoders
    "isinstance(treespec, LeafSpec)",                      # Lightning's pytree helper on torch >= 2.10
    "The `srun` command is available on your system",      # Lightning, on a SLURM login node (tools/submit.py)
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in _NOISE)


def quiet_third_party() -> None:
    """Keep the known, harmless third-party messages off the console; real warnings still show."""
    for n in _NOISE:
        warnings.filterwarnings("ignore", message=".*" + re.escape(n))
    drop = _DropNoise()
    for name in ("DeepSpeed", "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).addFilter(drop)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
