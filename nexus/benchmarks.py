"""What the tools/bench_*.py scripts share: timing on a device, and the clip-shape flags."""
from __future__ import annotations

import argparse
import statistics
import time

from nexus import checks


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        import torch
        torch.cuda.synchronize(dev)


def timed(fn, dev: torch.device, repeats: int) -> float:
    """Median seconds of fn() over `repeats` runs, the device synchronised around each."""
    out = []
    for _ in range(repeats):
        sync(dev)
        t0 = time.perf_counter()
        fn()
        sync(dev)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def peak_gib(dev: torch.device) -> float | None:
    """torch's peak allocated memory since the last reset, in GiB (None off CUDA)."""
    import torch
    return torch.cuda.max_memory_allocated(dev) / 2 ** 30 if dev.type == "cuda" else None


def reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        import torch
        torch.cuda.reset_peak_memory_stats(dev)


def clip_parser(doc: str, preset_help: str) -> argparse.ArgumentParser:
    """--preset, --tiny-models and the clip shape (tiny 9x32x32 by default), as every sampling-side bench takes
    (torch is imported by the functions that use it: a bad flag is refused before it loads)."""
    p = checks.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", action="store_true", help=preset_help)
    p.add_argument("--tiny-models", default="runs/.tiny_models")
    p.add_argument("--frames", type=checks.positive_int, default=9)
    p.add_argument("--height", type=checks.positive_int, default=32)
    p.add_argument("--width", type=checks.positive_int, default=32)
    return p
