"""A memory plan: what each GPU holds, phase by phase, against the GPU's memory.

A row is one thing resident on every GPU (weights, gradients, optimizer states, activations...) during some
phases of the work (a training step, the encoding of prompts, the sampling steps, the decoding). The peak is the
largest phase total; the plan fits when the peak, plus the fixed reserve, is within the GPU's memory."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

GIB = 1024 ** 3
# Memory as CUDA reports it (torch.cuda.get_device_properties(i).total_memory) for the GPUs of the field; on a
# GPU the plan reads the device itself (plan.gpu=auto). Names: <chip>-<marketing size>.
GPUS = {"h100-80gb": 79.2 * GIB, "h200-141gb": 139.8 * GIB, "a100-80gb": 79.2 * GIB, "a100-40gb": 39.4 * GIB,
        "h20-96gb": 95.0 * GIB, "l40s-48gb": 44.4 * GIB}
# Outside torch's allocator or its traces: the CUDA context, cuBLAS / cuDNN / flash-attention workspaces and NCCL
# buffers. An assumption until tools/gpu_report.py measures it on a GPU.
RESERVE = 2.0 * GIB
FRAGMENTATION = 0.05         # the caching allocator's slack over the bytes in use (assumed, as RESERVE)


class MemoryPlanError(ValueError):
    """A config that the memory plan says does not fit on its GPU: its first line says so, the plan's table and
    the changes that fit follow (printed as they are, not joined into one line)."""
    table = True


@dataclass
class Row:
    what: str
    bytes: int
    phases: tuple[str, ...]
    how: str = ""


@dataclass
class Plan:
    title: str
    phases: tuple[str, ...]
    rows: list[Row] = field(default_factory=list)
    gpu: str | None = None
    capacity: float | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, nbytes: float, phases: tuple[str, ...] | str | None = None, how: str = "") -> None:
        phases = (phases,) if isinstance(phases, str) else phases
        if nbytes:
            self.rows.append(Row(what, int(nbytes), tuple(phases or self.phases), how))

    def used(self, phase: str) -> int:
        """Bytes of the rows resident in `phase`: what torch's allocator would hold (max_memory_allocated)."""
        return sum(r.bytes for r in self.rows if phase in r.phases)

    def total(self, phase: str) -> int:
        return int(self.used(phase) * (1 + FRAGMENTATION) + RESERVE)

    @property
    def peak(self) -> tuple[str, int]:
        return max(((p, self.total(p)) for p in self.phases), key=lambda x: x[1])

    @property
    def fits(self) -> bool | None:
        return None if self.capacity is None else self.peak[1] <= self.capacity

    def table(self) -> str:
        w = max([len(r.what) for r in self.rows] + [30])
        head = f"{'per GPU':<{w}}  {'GiB':>7}  " + "  ".join(f"{p:>7}" for p in self.phases) + "  how"
        lines = [f"memory plan: {self.title}", head, "-" * len(head)]
        for r in self.rows:
            marks = "  ".join(f"{'x' if p in r.phases else '':>7}" for p in self.phases)
            lines.append(f"{r.what:<{w}}  {r.bytes / GIB:7.2f}  {marks}  {r.how}")
        lines.append(f"{f'+ {FRAGMENTATION:.0%} allocator slack, + {RESERVE / GIB:.0f} GiB reserve':<{w}}  {'':>7}  "
                     + "  ".join(f"{'':>7}" for _ in self.phases))
        lines.append(f"{'total':<{w}}  {'':>7}  " + "  ".join(f"{self.total(p) / GIB:7.2f}" for p in self.phases))
        phase, peak = self.peak
        if self.capacity is None:
            lines.append(f"peak {peak / GIB:.1f} GiB ({phase}); no GPU to check against (plan.gpu)")
        else:
            verdict = "fits" if self.fits else "DOES NOT FIT"
            lines.append(f"peak {peak / GIB:.1f} GiB ({phase}) of {self.capacity / GIB:.1f} GiB on {self.gpu}: "
                         f"{verdict}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        phase, peak = self.peak
        return {"title": self.title, "gpu": self.gpu, "capacity_gib": self.capacity and self.capacity / GIB,
                "peak_gib": peak / GIB, "peak_phase": phase, "fits": self.fits,
                "phases": {p: self.total(p) / GIB for p in self.phases},
                "allocated_gib": {p: self.used(p) / GIB for p in self.phases},
                "rows": [{"what": r.what, "gib": r.bytes / GIB, "phases": list(r.phases), "how": r.how}
                         for r in self.rows],
                "reserve_gib": RESERVE / GIB, "fragmentation": FRAGMENTATION, "notes": self.notes}


def gpu_memory(gpu: str | None) -> tuple[str | None, float | None]:
    """plan.gpu -> (name, bytes): a name of GPUS, '<N>gib', 'auto' (the CUDA device, none off CUDA) or 'off'."""
    if gpu in (None, "off"):
        return None, None
    if gpu == "auto":
        import torch
        if not torch.cuda.is_available():
            return None, None
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return props.name, float(props.total_memory)
    if gpu in GPUS:
        return gpu, GPUS[gpu]
    m = re.fullmatch(r"(\d+(?:\.\d+)?)gib", str(gpu).lower())
    if m:
        return gpu, float(m.group(1)) * GIB
    raise ValueError(f"plan.gpu={gpu!r}: choose one of {sorted(GPUS)}, '<N>gib' (e.g. 80gib), auto or off")


def refuse(plan: Plan, fixes: list[str], where: str) -> None:
    """Raise MemoryPlanError with the table and the changes that would fit, when the plan does not fit."""
    if plan.fits is not False:
        return
    phase, peak = plan.peak
    how = ("these changes fit, by the same plan:\n  " + "\n  ".join(fixes)) if fixes else \
        "no single change tried fits: see the table and docs/memory-plan.md"
    raise MemoryPlanError(f"{where} needs {peak / GIB:.1f} GiB per GPU ({phase}) but {plan.gpu} has "
                          f"{plan.capacity / GIB:.1f} GiB.\n{plan.table()}\n{how}\n"
                          f"(plan.gpu=off skips this check)")
