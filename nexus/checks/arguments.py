"""argparse with one-line errors, its type= functions for counts, sizes and numbers, and SLURM time limits.
(nexus.checks)"""
from __future__ import annotations

import argparse
import math
import re
import sys

from nexus.checks.files import named
from nexus.errors import UserError


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


# ---- SLURM
_SLURM_TIME = re.compile(r"^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}|\d+-\d+:\d{1,2}:\d{1,2})$")


def slurm_time(key: str, value) -> str:
    """A SLURM time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (or UNLIMITED)."""
    text = str(value).strip()
    if text.upper() in ("UNLIMITED", "INFINITE") or _SLURM_TIME.match(text):
        return text
    raise UserError(f"{named(key, value)}: not a SLURM time; use minutes (90), MM:SS, HH:MM:SS (48:00:00), D-HH, "
                    f"D-HH:MM or D-HH:MM:SS (2-00:00:00)")
