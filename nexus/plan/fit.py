"""The memory plan of `tools/fit.py` (stage 1, or a generator trained alone), per GPU, by strategy.

Model states follow DeepSpeed's own estimator for ZeRO (deepspeed.runtime.zero: 2 bytes of 16-bit weights per
parameter plus 18 / N for 16- and 32-bit gradients, fp32 master weights and Adam's two moments; ZeRO-3 adds the
largest module gathered in full) and, without DeepSpeed, what Lightning's precision plugins keep: fp32 weights,
fp32 gradients, AdamW's two fp32 moments and, on several devices, DDP's gradient buckets of the same size.
Activations are traced at the real shapes (nexus.plan.activations)."""
from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from nexus.models.loading import DTYPES
from nexus.plan import activations as act
from nexus.plan import sizes
from nexus.plan.table import GIB, Plan, gpu_memory, refuse

DS_BUCKETS = 2e8          # Lightning's DeepSpeedStrategy: allgather_bucket_size = reduce_bucket_size = 2e8 elements
DS_OVERLAP = 4.5          # DeepSpeed docs: overlap_comm holds 4.5x both buckets, 2 bytes an element


def devices(trainer: DictConfig) -> int:
    d = trainer.get("devices", "auto")
    if isinstance(d, str) and d != "auto" and d.lstrip("-").isdigit():
        d = int(d)
    if d == "auto" or d == -1:
        n = torch.cuda.device_count() if torch.cuda.is_available() else 1
    elif isinstance(d, int):
        n = d
    else:
        n = len(list(d))
    return max(n, 1) * int(trainer.get("num_nodes", 1))


def strategy(cfg: DictConfig, n: int) -> dict:
    s = cfg.strategy
    target = s.get("_target_", "")
    if "deepspeed" in target:
        return {"kind": "deepspeed", "stage": int(s.get("stage", 2)), "offload_optimizer": bool(s.get("offload_optimizer")),
                "offload_parameters": bool(s.get("offload_parameters"))}
    return {"kind": "ddp" if ("ddp" in target or n > 1) else "single"}


def largest_shape(d: DictConfig, context_len: int, text_len: int, vlm_tokens: int) -> act.StepShape:
    """The data shape of the heaviest batch (a bucket list takes its largest batch x latent tokens)."""
    from nexus.shapes import latent_tokens
    options = [dict(b) for b in d.buckets] if d.get("buckets") else [
        {"num_frames": d.num_frames, "height": d.height, "width": d.width, "batch_size": d.batch_size}]
    b = max(options, key=lambda o: o["batch_size"] * latent_tokens(o["num_frames"], o["height"], o["width"]))
    return act.StepShape(int(b["batch_size"]), int(b["num_frames"]), int(b["height"]), int(b["width"]), context_len,
                         text_len, vlm_tokens)


def lora_params(gen_cfg: dict, lora: dict) -> int:
    from diffusers import WanTransformer3DModel
    from peft import LoraConfig
    with torch.device("meta"):
        model = WanTransformer3DModel.from_config({k: v for k, v in gen_cfg.items() if not k.startswith("_")})
        model.add_adapter(LoraConfig(**lora))
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)


def largest_layer(gen_cfg: dict, connector: dict | None) -> int:
    """DeepSpeed's `largest_layer_params` (deepspeed.runtime.zero.stage3.model_to_params): the most parameters
    one module holds itself, over the generator and the connector."""
    from diffusers import WanTransformer3DModel
    from nexus.models.connector import ConnectorConfig, OmniConnector
    with torch.device("meta"):
        models = [WanTransformer3DModel.from_config({k: v for k, v in gen_cfg.items() if not k.startswith("_")})]
        models += [OmniConnector(ConnectorConfig(**connector))] if connector else []
    return max(sum(p.numel() for p in m.parameters(recurse=False)) for model in models for m in model.modules())


def connector_params(connector: dict) -> int:
    from nexus.models.connector import ConnectorConfig, OmniConnector
    with torch.device("meta"):
        return sizes.count(OmniConnector(ConnectorConfig(**connector)))


def fit_plan(cfg: DictConfig) -> Plan:
    m, d, plan_cfg = cfg.model, cfg.data, cfg.plan
    n = devices(cfg.trainer)
    st = strategy(cfg, n)
    precision = str(cfg.trainer.precision)
    gen_cfg, gen_src = sizes.wan_config(cfg.paths.get("wan"), plan_cfg.generator)
    gen_total, _ = sizes.wan_params(gen_cfg)
    connector = OmegaConf.to_container(m.connector, resolve=True) if m.conditioning == "connector" else None
    lora = OmegaConf.to_container(m.lora, resolve=True) if m.get("lora") else {}
    trainable = (gen_total if m.generator_train == "full" else 0) + (connector_params(connector) if connector else 0)
    if m.generator_train == "lora":
        trainable += lora_params(gen_cfg, {"r": 16, "lora_alpha": 16,
                                           "target_modules": ["to_q", "to_k", "to_v", "to_out.0"]} | lora)
    frozen = gen_total if m.generator_train != "full" else 0
    raw = d.kind == "raw"
    phases = (("encode",) if raw else ()) + ("step",) + (("eval",) if cfg.eval.enabled else ())
    gpu, capacity = gpu_memory(plan_cfg.gpu)
    where = {"deepspeed": f"DeepSpeed ZeRO-{st.get('stage')}", "ddp": "DDP", "single": "one device"}[st["kind"]]
    plan = Plan(f"fit {cfg.name}: {n} GPU(s), {where}, {precision}, data.kind={d.kind}", phases, gpu=gpu,
                capacity=capacity, notes=[f"generator: {gen_src} ({gen_total / 1e9:.3f} B parameters, "
                                          f"generator_train={m.generator_train}); trainable {trainable / 1e9:.3f} B"])
    ds = st["kind"] == "deepspeed"
    if ds:
        stage, off_opt, off_par = st["stage"], st["offload_optimizer"], st["offload_parameters"]
        if stage <= 2:
            plan.add("trainable weights (bf16)", 2 * trainable, how="DeepSpeed estimator: 2 B/param")
            if not off_opt:
                plan.add(f"grads + fp32 master + Adam (ZeRO-{stage}, /{n})", 18 * trainable / n,
                         how=f"DeepSpeed estimator: 18 B/param / {n}")
        else:
            plan.add("largest layer gathered (ZeRO-3)", 4 * largest_layer(gen_cfg, connector),
                     how="DeepSpeed estimator: 4 B/param of the largest module")
            per = 0 if (off_opt and off_par) else (2 if off_opt else 18)
            plan.add(f"ZeRO-3 partitions (/{n})", per * trainable / n, how=f"DeepSpeed estimator: {per} B/param / {n}")
        plan.add("frozen weights (bf16)", 2 * frozen / (n if stage == 3 else 1), how="DeepSpeed casts the module")
        plan.add("DeepSpeed communication buckets", DS_OVERLAP * 2 * 2 * DS_BUCKETS,
                 how="overlap_comm: 4.5 x (allgather + reduce) x 2 B")
        params_dtype, autocast = torch.bfloat16, None
    else:
        true16 = "true" in precision and ("16" in precision)
        b = 2 if true16 else 4
        plan.add(f"trainable weights ({'16-bit' if true16 else 'fp32'})", b * trainable)
        plan.add("gradients", b * trainable)
        plan.add("AdamW moments", 2 * b * trainable)
        if n > 1:
            plan.add("DDP gradient buckets", b * trainable, how="gradient_as_bucket_view off (Lightning's default)")
        plan.add("frozen weights", b * frozen)
        from nexus.training.flops import precision_dtype
        mixed = "mixed" in precision
        params_dtype = precision_dtype(precision) if true16 else torch.float32
        autocast = precision_dtype(precision) if mixed else None
    enc_bytes = DTYPES[m.encoder_dtype].itemsize
    if raw:
        umt5, umt5_src = sizes.umt5_params(cfg.paths.get("wan"))
        vae, _ = sizes.vae_params(cfg.paths.get("wan"))
        plan.add("UMT5 encoder", enc_bytes * umt5, how=f"{umt5_src}, {m.encoder_dtype}")
        plan.add("VAE", enc_bytes * vae, how=m.encoder_dtype)
        if connector is not None:
            vlm, _, vlm_src = sizes.vlm_params(cfg.paths.get("vlm"), plan_cfg.vlm)
            plan.add("VLM (understanding block)", enc_bytes * vlm, how=f"{vlm_src}, {m.encoder_dtype}")
    shape = largest_shape(d, m.context_len if connector else m.text_len, m.text_len, plan_cfg.vlm_tokens)
    freeze = act.freeze
    step = act.train_step(freeze(gen_cfg), shape, freeze(connector) if connector else None, m.generator_train,
                          freeze(lora) if lora else None, bool(m.gradient_checkpointing), params_dtype, autocast)
    plan.add("activations: training step", step, "step",
             how=f"traced: batch {shape.batch} x {shape.frames}x{shape.height}x{shape.width}, "
                 f"checkpointing {'on' if m.gradient_checkpointing else 'off'}")
    if raw:
        enc_dtype = DTYPES[m.encoder_dtype]
        wan = cfg.paths.get("wan")
        plan.add("activations: VAE encode + UMT5",
                 max(act.vae(shape, "encode", enc_dtype, config=sizes.part_config(wan, "vae")),
                     act.umt5(shape.batch + 1, m.text_len, sizes.part_config(wan, "text_encoder"), enc_dtype)),
                 "encode", how="traced")
        if connector is not None:
            plan.notes.append("the VLM's activations on a prompt (a few hundred tokens) are not traced: well under "
                              "the reserve")
    if cfg.eval.enabled:
        from nexus.plan.sample import eval_rows
        eval_rows(plan, cfg, gen_cfg, params_dtype)
    if not ds and autocast is not None:
        plan.notes.append("mixed precision traced with the CPU's autocast op list, which differs from CUDA's in "
                          "places")
    return plan


# what to try when a fit does not fit, in order: each is a set of overrides
FIT_FIXES = [
    ("strategy=deepspeed_zero2", {"strategy": {"_target_": "nexus.training.strategies.deepspeed_strategy", "stage": 2,
                                               "offload_optimizer": False, "offload_parameters": False}}),
    ("data.kind=features (tools/precompute.py)", {"data": {"kind": "features"}}),
    ("model.gradient_checkpointing=true", {"model": {"gradient_checkpointing": True}}),
    ("strategy=deepspeed_zero2_offload", {"strategy": {"_target_": "nexus.training.strategies.deepspeed_strategy",
                                                       "stage": 2, "offload_optimizer": True,
                                                       "offload_parameters": False}}),
    ("strategy=deepspeed_zero3", {"strategy": {"_target_": "nexus.training.strategies.deepspeed_strategy", "stage": 3,
                                               "offload_optimizer": False, "offload_parameters": False}}),
    ("eval.enabled=false (evaluate with tools/watch_eval.py on another GPU)", {"eval": {"enabled": False}}),
]


def fixes(cfg: DictConfig, candidates=FIT_FIXES, make=fit_plan) -> list[str]:
    """The candidate changes that make the plan fit, each with its peak."""
    out = []
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))   # not the schema's: a fix may add keys
    for label, override in candidates:
        if len(out) == 3:            # enough to choose from; the later candidates cost more speed
            break
        alt = OmegaConf.merge(plain, override)
        if OmegaConf.to_container(alt) == OmegaConf.to_container(plain):
            continue
        plan = make(alt)
        if plan.fits:
            out.append(f"{label}: peak {plan.peak[1] / GIB:.1f} GiB")
    return out


def check_fit(cfg: DictConfig) -> Plan | None:
    """Plan a fit and refuse it (MemoryPlanError) when it does not fit on plan.gpu; None when there is no GPU."""
    if gpu_memory(cfg.plan.gpu)[1] is None:
        return None
    plan = fit_plan(cfg)
    without_eval = OmegaConf.merge(OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)),
                                   {"eval": {"enabled": False}})
    if plan.fits is False and cfg.eval.enabled and fit_plan(without_eval).fits is not False:
        refuse(plan, ["eval.enabled=false, and evaluate each checkpoint with tools/watch_eval.py on another GPU "
                      "(the training fits without the evaluation)"], "this run's evaluation during training")
    refuse(plan, fixes(cfg), "this run")
    return plan
