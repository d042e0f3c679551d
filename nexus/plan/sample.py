"""The memory plan of `tools/sample.py` / `tools/watch_eval.py` (UPFB inference), and of evaluation during
training. Three phases per batch of prompts: `encode` (UMT5, the VLM and the connector), `sample` (the
generators' guided forwards) and `decode` (the VAE). What sits on the GPU in each phase is the sampler's own
placement table (nexus.pipelines.placement.resident), so the plan and the sampler cannot disagree."""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from nexus.pipelines.placement import PHASES, check_placement, resident
from nexus.models.loading import DTYPES, read_config
from nexus.plan import activations as act
from nexus.plan import sizes
from nexus.plan.table import Plan, gpu_memory, refuse
from nexus.upfb.sampler import needs


def phases_of(name: str, offload: str, encoders: str) -> tuple[str, ...]:
    return tuple(p for p in PHASES if name in resident(p, offload, encoders))


def generator_rows(plan: Plan, name: str, cfgs: list[dict], dtype: torch.dtype, offload: str,
                   encoders: str, key: str) -> None:
    """Weights of one generator (one expert, or Wan2.2-A14B's two) where the placement keeps them."""
    counts = [sizes.wan_params(c) for c in cfgs]
    b = dtype.itemsize
    if offload == "group":
        t, block = max(counts)
        plan.add(f"{name} weights (group offload)", b * (2 * block + t - block * cfgs[0]["num_layers"]),
                 phases_of(key, offload, encoders), how="one block in use + one prefetched, plus embeddings and head")
        return
    plan.add(f"{name} weights", b * counts[0][0], phases_of(key, offload, encoders),
             how="the active expert" if len(cfgs) > 1 and offload == "model" else "")
    if len(cfgs) > 1 and offload == "none":
        plan.add(f"{name} weights, 2nd expert", b * counts[1][0], phases_of("large_2", offload, encoders))


def sampling_rows(plan: Plan, small: dict | None, large: list[dict] | None, shape: act.StepShape,
                  large_shape: act.StepShape, dtype: torch.dtype, offload: str, encoders: str, vae_tiling: bool,
                  batched_cfg: bool, small_resident: bool = False, vae_config: str = "") -> None:
    """The sample and decode phases: generator weights, their forward activations, the VAE's decode."""
    if small is not None and not small_resident:
        generator_rows(plan, "small generator", [small], dtype, offload, encoders, "small")
    if large:
        generator_rows(plan, "large generator", large, dtype, offload, encoders, "large")
    forwards = [act.generator_forward(act.freeze(small), shape, dtype, batched_cfg)] if small else []
    forwards += [act.generator_forward(act.freeze(c), large_shape, dtype, batched_cfg) for c in large or []]
    plan.add("activations: guided forward", max(forwards), "sample",
             how=f"traced: {shape.batch} prompt(s) x {shape.frames}x{shape.height}x{shape.width}, "
                 f"{'cond+null batched' if batched_cfg else 'cond, null apart'}")
    plan.add("activations: VAE decode", act.vae(shape, "decode", dtype, vae_tiling, vae_config), "decode",
             how="traced, tiled" if vae_tiling else "traced")


def export_parts(export: str | None) -> tuple[dict | None, dict | None]:
    """(transformer config, connector config) of a stage-1 export folder, as far as it holds them."""
    if not export or not Path(export).is_dir():
        return None, None
    t, c = Path(export) / "transformer" / "config.json", Path(export) / "connector" / "config.json"
    return (read_config(t) if t.is_file() else None), (read_config(c) if c.is_file() else None)


def sample_plan(cfg: DictConfig) -> Plan:
    s, p, pc, strategy = cfg.sampling, cfg.paths, cfg.plan, cfg.bridge.strategy
    check_placement(s.offload, s.encoders, s.small_device)
    dtype = DTYPES[s.dtype]
    need_small, need_large = needs(strategy)          # the generators the pipeline loads for this strategy
    export_t, export_c = export_parts(cfg.small.get("export"))
    if export_c is None and pc.connector:          # planning a stage-1 export not made yet: the full-size connector
        from nexus.models.connector import ConnectorConfig
        export_c = ConnectorConfig().to_dict()
    connector = export_c
    connector = connector if need_small else None
    small = (export_t or sizes.wan_config(p.get("small"), pc.small)[0]) if need_small else None
    large, large_src = sizes.large_configs(p.get("large"), pc.large) if need_large else (None, None)
    gpu, capacity = gpu_memory(pc.gpu)
    plan = Plan(f"sample {cfg.name}: {strategy}, {s.num_frames}x{s.height}x{s.width}, batch {s.batch_size}, "
                f"{s.dtype}, offload={s.offload}, encoders={s.encoders}", PHASES, gpu=gpu, capacity=capacity)
    if large:
        plan.notes.append(f"large generator: {large_src}, {len(large)} expert(s)")
    if connector is None and need_small:
        plan.notes.append("no connector: the stock small generator (small.export unset; plan.connector=true plans "
                          "a stage-1 export)")
    b, where = dtype.itemsize, (s.offload, s.encoders)
    if s.encoders == "device":
        umt5, src = sizes.umt5_params(p.get("small"))
        plan.add("UMT5 encoder", b * umt5, phases_of("umt5", *where), how=src)
        if connector is not None:
            vlm, _, vsrc = sizes.vlm_params(p.get("vlm"), pc.vlm)
            plan.add("VLM (understanding block)", b * vlm, phases_of("vlm", *where), how=vsrc)
            from nexus.plan.fit import connector_params
            plan.add("connector weights", b * connector_params(connector), phases_of("connector", *where))
        plan.add("activations: UMT5", act.umt5(s.batch_size + 1, s.text_len, sizes.part_config(p.get("small"),
                                                                                                "text_encoder"),
                                                dtype), "encode", how="traced")
    vae, _ = sizes.vae_params(p.get("small"))
    plan.add("VAE weights", b * vae, phases_of("vae", *where))
    shape = act.StepShape(s.batch_size, s.num_frames, s.height, s.width, s.context_len if connector else s.text_len,
                          s.text_len, pc.vlm_tokens)
    large_shape = act.StepShape(s.batch_size, s.num_frames, s.height, s.width, s.text_len, s.text_len)
    if s.small_device != "same" and small is not None and large:
        plan.notes.append(f"the small generator samples on another device (sampling.small_device={s.small_device}): "
                          f"its weights and forward are not on this GPU")
        small = None
    sampling_rows(plan, small, large, shape, large_shape, dtype, s.offload, s.encoders, bool(s.vae_tiling),
                  bool(cfg.bridge.batched_cfg), vae_config=sizes.part_config(p.get("small"), "vae"))
    return plan


SAMPLE_FIXES = [
    ("sampling.offload=model", {"sampling": {"offload": "model"}}),
    ("sampling.encoders=cpu", {"sampling": {"encoders": "cpu"}}),
    ("sampling.batch_size=1", {"sampling": {"batch_size": 1}}),
    ("bridge.batched_cfg=false", {"bridge": {"batched_cfg": False}}),
    ("sampling.offload=group", {"sampling": {"offload": "group"}}),
    ("sampling.offload=group sampling.vae_tiling=true", {"sampling": {"offload": "group", "vae_tiling": True}}),
]


def check_sample(cfg: DictConfig) -> Plan | None:
    """Plan a sampling run and refuse it when it does not fit on plan.gpu; None when there is no GPU."""
    if gpu_memory(cfg.plan.gpu)[1] is None:
        return None
    from nexus.plan.fit import fixes
    plan = sample_plan(cfg)
    refuse(plan, fixes(cfg, SAMPLE_FIXES, sample_plan), "this sampling run")
    return plan


def eval_rows(plan: Plan, cfg: DictConfig, gen_cfg: dict, train_dtype: torch.dtype) -> None:
    """Evaluation during training (nexus.evaluation.callback): the trained small generator samples in place, the
    large one (eval.strategy=upfb) is loaded in the compute dtype with only its active expert on the GPU."""
    e = cfg.eval
    sm = e.sampling
    dtype = train_dtype if train_dtype != torch.float32 else torch.bfloat16
    shape = act.StepShape(1, int(sm.num_frames), int(sm.height), int(sm.width), cfg.model.context_len,
                          cfg.model.text_len, cfg.plan.vlm_tokens)
    large = None
    if e.strategy not in ("small_only",):
        large = sizes.large_configs(e.get("large"), cfg.plan.large)[0]
    plan.phases = tuple(dict.fromkeys(plan.phases + ("eval",)))
    before = len(plan.rows)
    sampling_rows(plan, gen_cfg, large, shape, act.StepShape(1, shape.frames, shape.height, shape.width,
                                                             cfg.model.text_len, cfg.model.text_len),
                  dtype, "model", "device", False, True, small_resident=True,
                  vae_config=sizes.part_config(cfg.paths.get("wan"), "vae"))
    for r in plan.rows[before:]:           # all of evaluation's rows belong to the eval phase
        r.phases = ("eval",)
        r.what = f"eval: {r.what}"
