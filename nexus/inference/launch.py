"""`tools/sample.py` in library form: composed config -> checks -> BridgeModule -> Trainer.predict."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from nexus.export import as_export
from nexus.inference.module import BridgeModule
from nexus.inference.prompts import load_prompts
from nexus.models.loading import VLM_LAYOUT, WAN_LAYOUT, check_folder
from nexus.models.tiny import ensure_tiny_models

LARGE_LAYOUT = {"transformer": ("transformer/config.json",), "vae": ("vae/config.json",)}


def sample(cfg: DictConfig) -> list[str]:
    prompts = load_prompts(cfg.prompt, cfg.prompt_file)          # an empty prompt file stops here
    p = cfg.paths
    if p.get("tiny_models"):
        built = ensure_tiny_models(p.tiny_models)
        p.small, p.large, p.vlm = p.small or built["wan"], p.large or built["wan_large"], p.vlm or built["vlm"]
    need_small = cfg.bridge.strategy != "large_only"
    check_folder("paths.small", p.small, WAN_LAYOUT, env="NEXUS_WAN_PATH")      # VAE + UMT5 always come from here
    if cfg.bridge.strategy != "small_only":
        check_folder("paths.large", p.large, LARGE_LAYOUT, env="NEXUS_WAN_LARGE_PATH")
    s = cfg.sampling
    export = as_export(cfg.small.export, Path(cfg.out_dir) / ".stage1") if need_small and cfg.small.export else None
    if export is not None:      # the connector reads the VLM it was trained with
        check_folder("paths.vlm", p.vlm, VLM_LAYOUT, env="NEXUS_VLM_PATH")
    module = BridgeModule(p.small, p.large, cfg.out_dir, export=str(export) if export else None,
                          vlm_path=p.vlm, bridge=OmegaConf.to_container(cfg.bridge),
                          allow_latent_mismatch=cfg.large.allow_latent_mismatch,
                          **{k: v for k, v in OmegaConf.to_container(s).items() if k != "batch_size"})
    todo = [q for q in prompts if not module.video_path(q.id).exists()]
    print(f"{len(prompts)} prompts, {len(prompts) - len(todo)} already done, writing to {cfg.out_dir}")
    trainer = L.Trainer(logger=False, enable_checkpointing=False, **OmegaConf.to_container(cfg.trainer))
    trainer.predict(module, DataLoader(todo or prompts[:0], batch_size=s.batch_size, collate_fn=list))
    return [str(module.video_path(q.id)) for q in prompts]
