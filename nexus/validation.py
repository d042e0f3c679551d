"""A composed config checked against its schema (nexus.schema): types by OmegaConf, then the ranges the schema's
fields carry, the trainer values Lightning accepts, and the bridge schedule; each refusal names the full key, before
anything heavy is imported."""
from __future__ import annotations

import math
from dataclasses import fields, is_dataclass

from omegaconf import DictConfig, OmegaConf

OPEN = ("trainer",)      # sections (besides the Dict-typed ones) that take keys beyond the YAML's


def validate(cfg: DictConfig, schema: type) -> DictConfig:
    """`cfg` merged onto the schema: a value of the wrong type raises OmegaConf's ValidationError naming the
    full key. Returns the typed config (struct mode: an unknown key is an error, as in Hydra's config)."""
    typed = OmegaConf.structured(schema)
    for key in OPEN:
        node = OmegaConf.select(typed, key)
        if isinstance(node, DictConfig):
            OmegaConf.set_struct(node, False)
    merged = OmegaConf.merge(typed, cfg)
    OmegaConf.set_struct(merged, True)
    for key in OPEN:
        node = OmegaConf.select(merged, key)
        if isinstance(node, DictConfig):
            OmegaConf.set_struct(node, False)
    check_ranges(merged, schema)
    check_trainer(merged)
    check_schedule(merged)
    return merged


# Lightning's own accepted values (tests/test_schema.py compares them with Lightning's), named here so that a
# wrong one is refused by its key before Lightning is imported
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps", "tpu")
PRECISIONS = ("16-true", "16-mixed", "bf16-true", "bf16-mixed", "32-true", "64-true", "transformer-engine",
              "transformer-engine-float16", "64", "32", "16", "bf16", 64, 32, 16)


def _value(cfg: DictConfig, key: str):
    """The value at `key` (None when missing, unset or not resolvable outside a run: a `${hydra:...}`)."""
    try:
        return OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    except Exception:          # noqa: BLE001  an interpolation only a Hydra run resolves is checked by the run
        return None


def _range_text(lo, hi, above, below, also) -> str:
    parts = [f">= {lo}" if lo is not None else None, f"> {above}" if above is not None else None,
             f"<= {hi}" if hi is not None else None, f"< {below}" if below is not None else None]
    text = " and ".join(p for p in parts if p)
    return text + (f" (or {', '.join(map(str, also))})" if also else "")


def check_ranges(cfg: DictConfig, schema: type, prefix: str = "") -> None:
    """Every bounded field within its range and every float finite, by full key (nexus.errors.UserError)."""
    from typing import get_type_hints
    from nexus.errors import UserError
    hints = get_type_hints(schema)
    for f in fields(schema):
        key, kind = f"{prefix}{f.name}", hints[f.name]
        if is_dataclass(kind):
            check_ranges(cfg, kind, f"{key}.")
            continue
        v = _value(cfg, key)
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise UserError(f"{key}={v}: must be a finite number")
        if "range" not in f.metadata:
            continue
        lo, hi, above, below, also = f.metadata["range"]
        if v in also:
            continue
        if ((lo is not None and v < lo) or (hi is not None and v > hi) or (above is not None and not v > above)
                or (below is not None and not v < below)):
            raise UserError(f"{key}={v}: must be {_range_text(lo, hi, above, below, also)}")


def _device_count(devices) -> int | None:
    """How many devices a `trainer.devices` value asks for (None: "auto"/-1, all of them); ValueError if none."""
    if devices in ("auto", -1, "-1"):
        return None
    if isinstance(devices, int) and not isinstance(devices, bool):
        return devices
    if isinstance(devices, str):
        items = [d.strip() for d in devices.split(",") if d.strip()]
        if not items or not all(d.lstrip("-").isdigit() for d in items):
            raise ValueError(devices)
        return int(items[0]) if len(items) == 1 and not devices.rstrip().endswith(",") else len(items)
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices):
            raise ValueError(devices)
        return len(devices)
    raise ValueError(devices)


def check_trainer(cfg: DictConfig) -> None:
    """trainer.{accelerator, precision, devices} in the forms Lightning takes: said by key, not in Lightning's words."""
    from nexus.errors import UserError
    if "trainer" not in cfg:
        return
    acc, precision, devices = (_value(cfg, f"trainer.{k}") for k in ("accelerator", "precision", "devices"))
    if acc is not None and acc not in ACCELERATORS:
        raise UserError(f"trainer.accelerator={acc}: choose one of {', '.join(ACCELERATORS)}")
    if precision is not None and precision not in PRECISIONS:
        raise UserError(f"trainer.precision={precision}: choose one of {', '.join(map(str, PRECISIONS[:8]))} "
                        "(or 16, 32, 64, bf16)")
    if devices is not None:
        try:
            n = _device_count(devices)
        except ValueError:
            n = 0
        if n is not None and n < 1:
            raise UserError(f"trainer.devices={devices}: give a number of devices >= 1, a list of device ids such "
                            "as [0,1], or auto")


def check_schedule(cfg: DictConfig) -> None:
    """Steps within the schedule: bridge.switch_step <= sampling.num_steps; the sigma range ordered."""
    from nexus.errors import UserError
    steps, switch = _value(cfg, "sampling.num_steps"), _value(cfg, "bridge.switch_step")
    if isinstance(steps, int) and isinstance(switch, int) and switch > steps:
        raise UserError(f"bridge.switch_step={switch}: the schedule has sampling.num_steps={steps} steps; "
                        f"choose a step in 0..{steps}")
    lo, hi = _value(cfg, "bridge.sigma_min"), _value(cfg, "bridge.sigma_max")
    if isinstance(lo, float) and isinstance(hi, float) and not lo < hi:
        raise UserError(f"bridge.sigma_min={lo} must be below bridge.sigma_max={hi}")
