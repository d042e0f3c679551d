"""`tools/sample.py` in library form: composed config -> checks -> the sample folder's record -> BridgeModule ->
Trainer.predict. Everything that can refuse the command is checked before the folder is touched and before any
weights load (nexus.inference.provenance says what a folder may hold)."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from nexus import console
from nexus.export import as_export
from nexus.folder_lock import hold
from nexus.inference.module import BridgeModule, check_lengths, check_release_settings, check_settings
from nexus.models.text import check_prompt_lengths
from nexus.models.understanding import check_prompt_recipe
from nexus.inference.prompts import load_prompts
from nexus.inference.provenance import check_folder, claim_folder, new_record, note_export
from nexus.models.latent_space import check_latent_space
from nexus.models.loading import VLM_LAYOUT, WAN_LAYOUT, check_folder as check_weights, read_config
from nexus.models.tiny import ensure_tiny_models
from nexus.pipelines.parts import check_export
from nexus.pipelines.placement import check_placement
from nexus.models.speed import check_accelerator, check_speed, set_tf32
from nexus.plan.sample import check_sample
from nexus.plan.table import gpu_memory
from nexus.slurm.requeue import StopOnSignal
from nexus.slurm.resume import checkpoint_problem
from nexus.upfb.sampler import needs

LAUNCH_ONLY = ("batch_size", "truncate_prompts")       # sampling.* keys for this launcher, not BridgeModule
LARGE_LAYOUT = {"transformer": ("transformer/config.json",), "vae": ("vae/config.json",)}


def sample(cfg: DictConfig) -> list[str]:
    from nexus.checks import sample_inputs_outputs
    sample_inputs_outputs(cfg)       # output paths and input files, before anything is built
    prompts = load_prompts(cfg.prompt, cfg.prompt_file)          # an empty prompt file stops here
    p, s = cfg.paths, cfg.sampling
    check_settings(s.num_frames, s.height, s.width, s.num_steps, s.scheduler, s.dtype,
                   OmegaConf.to_container(cfg.bridge), s.shift)
    check_placement(s.offload, s.encoders, s.small_device)
    check_accelerator(cfg.trainer.accelerator)
    check_speed(s.attention, "sampling")
    check_release_settings(s.noise, s.video, s.vlm_dtype)
    if s.prompt_recipe is not None:
        check_prompt_recipe(s.prompt_recipe, "sampling.prompt_recipe")
    gpu_memory(cfg.plan.gpu)
    need_small, need_large = needs(cfg.bridge.strategy)        # the generators the pipeline will load
    stage1 = cfg.small.export if need_small else None
    if stage1 and not (Path(stage1) / "connector").is_dir() and checkpoint_problem(stage1):
        raise FileNotFoundError(f"small.export={stage1}: {checkpoint_problem(stage1)}, and not an export folder "
                                f"(connector/, transformer/ ...): pass tools/export.py's output or a stage-1 "
                                f"checkpoint such as runs/<recipe>/<run>/checkpoints/last.ckpt")
    if p.get("tiny_models"):
        built = ensure_tiny_models(p.tiny_models)
        p.small, p.large, p.vlm = p.small or built["wan"], p.large or built["wan_large"], p.vlm or built["vlm"]
    if stage1 and (Path(stage1) / "nexus.json").is_file():   # a converted release names its frozen parts
        info = read_config(Path(stage1) / "nexus.json")
        p.small, p.vlm = p.small or info.get("wan_path"), p.vlm or info.get("vlm_path")
    if not p.small and not stage1 and cfg.name == "lumos_nexus_release":
        raise ValueError("small.export is not set: pass the converted release (tools/convert.py omnivideo --bundle "
                         "<OmniVideo11B> --out exports/lumos-nexus; then small.export=exports/lumos-nexus or "
                         "NEXUS_RELEASE_PATH)")
    check_weights("paths.small", p.small, WAN_LAYOUT, env="NEXUS_WAN_PATH")      # VAE + UMT5 always come from here
    if need_large:
        check_weights("paths.large", p.large, LARGE_LAYOUT, env="NEXUS_WAN_LARGE_PATH")
    if stage1:
        check_weights("paths.vlm", p.vlm, VLM_LAYOUT, env="NEXUS_VLM_PATH")   # the connector reads this VLM
    if need_small and need_large:
        check_latent_space(p.small, p.large, cfg.large.allow_latent_mismatch)
    check_prompt_lengths(prompts, p.small, s.text_len, p.vlm if stage1 else None, s.prompt_recipe,
                         s.get("truncate_prompts", False))
    out_dir, overwrite = Path(cfg.out_dir), bool(cfg.get("overwrite", False))
    lock = hold(out_dir, "choose another run.name (or out_dir)", rank_zero_only.rank)    # one live process
    try:
        return _sample(cfg, prompts, stage1, (need_small, need_large), out_dir, overwrite)
    finally:
        if lock is not None:
            lock.release()


def _sample(cfg: DictConfig, prompts: list, stage1: str | None, need: tuple[bool, bool], out_dir: Path,
            overwrite: bool) -> list[str]:
    """The rest of `sample`, with the folder locked: its record, the module, the prediction."""
    p, s = cfg.paths, cfg.sampling
    record = new_record(cfg)
    old = check_folder(out_dir, record, prompts, overwrite)      # refuses a folder made with other settings
    export = as_export(stage1, out_dir / ".stage1") if stage1 else None
    if export is not None:
        check_export(export, p.vlm)
    check_lengths(p.small if need[0] else None, p.large if need[1] else None, export, s.text_len, s.context_len)
    set_tf32(cfg.tf32)
    memory = check_sample(cfg)      # refuses what cannot fit on plan.gpu (the CUDA device by default)
    if memory is not None and rank_zero_only.rank == 0:
        print(memory.table())
    if rank_zero_only.rank == 0:
        record = claim_folder(out_dir, record, prompts, old, overwrite)
        console.attach_log(out_dir / "sample.log")
        if export is not None and record["weights"]["export"]["kind"] == "checkpoint":
            note_export(out_dir, record, export)
    module = BridgeModule(p.small, p.large, str(out_dir), export=str(export) if export else None,
                          vlm_path=p.vlm, bridge=OmegaConf.to_container(cfg.bridge),
                          allow_latent_mismatch=cfg.large.allow_latent_mismatch,
                          **{k: v for k, v in OmegaConf.to_container(s).items() if k not in LAUNCH_ONLY})
    todo = [q for q in prompts if not module.video_path(q.id).exists()]
    print(f"{len(prompts)} prompts, {len(prompts) - len(todo)} already in {out_dir} with these settings, "
          f"{len(todo)} to sample")
    trainer = L.Trainer(logger=False, enable_checkpointing=False, callbacks=[StopOnSignal()],
                        **OmegaConf.to_container(cfg.trainer))
    trainer.predict(module, DataLoader(todo or prompts[:0], batch_size=s.batch_size, collate_fn=list))
    return [str(module.video_path(q.id)) for q in prompts]
