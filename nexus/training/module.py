"""Stage 1 of Lumos-Nexus: align the connector and the small generator with the frozen understanding block.

Loss (paper Eq. 1, rectified flow): || G_S(x_t, t, c_S) - (e - x0) ||^2 with x_t = (1 - s) x0 + s e and
c_S = [connector(VLM(prompt)) ; UMT5(prompt)] (METHOD.md, "Injection"). The VLM, UMT5 and the VAE are frozen
and live outside the module tree (nexus.models.encoders), or are replaced by precomputed features.

conditioning=umt5 is plain text-to-video training of a Wan generator, the same loss with Wan's own context
(UMT5 tokens zero-padded to 512, as WanPipeline builds it): no connector, no VLM. It pretrains or fine-tunes a
generator on its own (recipe wan13b_t2v; the shapes lab pretrains its generators with it).
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from safetensors.torch import load_file
from lightning.pytorch.utilities import grad_norm
from transformers import get_cosine_schedule_with_warmup

from nexus import flow
from nexus.errors import RunStopped
from nexus.models.conditioning import WAN_TEXT_LEN, pad_tokens, small_context, wan_context
from nexus.models.connector import ConnectorConfig, OmniConnector
from nexus.models.encoders import FrozenEncoders, load_null_features
from nexus.models.loading import DTYPES, load_transformer
from nexus.models.speed import check_speed, speed_up
from nexus.models.understanding import INSTRUCTION, check_prompt_recipe
from nexus.training.callbacks import batch_latent_tokens, batch_size
from nexus.training.flops import train_flops_per_sample
from nexus.training.turns import in_turns

GENERATOR_TRAIN = ("full", "lora", "frozen")
CONDITIONING = ("connector", "umt5")


class NonFiniteLossError(RunStopped):
    """The loss became NaN/inf: the run stops, its last good checkpoint is kept."""


def init_from_info(init_from: str | None) -> dict:
    """model.init_from's nexus.json ({} when unset)."""
    if not init_from:
        return {}
    from nexus.models.loading import read_config
    return read_config(Path(init_from) / "nexus.json")


SIZES = ("vlm_dim", "vision_dim", "vision_layers", "vision_ffn", "vision_queries", "out_dim", "adapter_layers",
         "adapter_ffn", "adapter_queries")


def init_from_sizes(init_from: str | None) -> dict:
    """The connector sizes of model.init_from's weights (a fact of the export, not a choice): the run takes them;
    heads, activations and markers stay the run's choice and are checked against the export's."""
    cfg = Path(init_from or "") / "connector" / "config.json"
    if not init_from or not cfg.is_file():
        return {}
    from nexus.models.loading import read_config
    return {k: v for k, v in read_config(cfg).items() if k in SIZES}


def check_init_from(init_from: str | None, connector: dict | None, prompt_recipe: str, context_len: int,
                    generator_train: str, conditioning: str) -> None:
    """model.init_from must be a full stage-1 export whose connector, prompt recipe and context length are the
    run's: the same module then continues from its weights (a mismatch would load into another architecture)."""
    if not init_from:
        return
    root = Path(init_from)
    need = [f for f in ("connector/config.json", "connector/model.safetensors", "transformer/config.json",
                        "nexus.json") if not (root / f).is_file()]
    if need:
        raise FileNotFoundError(f"model.init_from={init_from}: not a full stage-1 export (missing {', '.join(need)}); "
                                f"pass tools/convert.py omnivideo's output or tools/export.py's of a "
                                f"generator_train=full run")
    if conditioning != "connector":
        raise ValueError("model.init_from starts the connector and the generator from an export: it needs "
                         "model.conditioning=connector")
    from nexus.models.loading import read_config
    have = ConnectorConfig(**read_config(root / "connector" / "config.json")).to_dict()
    want = ConnectorConfig(**(connector or {})).to_dict()
    diffs = [f"model.connector.{k}: {want[k]} (export: {have[k]})" for k in want if k != "dropout" and want[k] != have[k]]
    info = read_config(root / "nexus.json")
    if info.get("prompt_recipe", "chat_template") != prompt_recipe:
        diffs.append(f"model.prompt_recipe: {prompt_recipe} (export: {info.get('prompt_recipe', 'chat_template')})")
    if info.get("context_len") is not None and info["context_len"] != context_len:
        diffs.append(f"model.context_len: {context_len} (export: {info['context_len']})")
    if diffs:
        raise ValueError(f"model.init_from={init_from} was made with other settings: {'; '.join(diffs)}. Use the "
                         f"export's (for the release: connector=omnivideo_v1, model.prompt_recipe=vila_llama3, "
                         f"model.context_len=2560; recipe=lumos_release_stage1 sets them)")


def check_training_settings(generator_train: str = "full", cfg_dropout: float = 0.2, warmup_steps: int = 0,
                            lr: float = 1e-5, connector_lr: float | None = None, conditioning: str = "connector",
                            umt5_dropout: float = 0.0, attention: str | None = None, init_from: str | None = None,
                            connector: dict | None = None, prompt_recipe: str = "chat_template",
                            context_len: int = 2560, timestep_sampling: str = "uniform",
                            loss_weighting: str = "none", lora: dict | None = None, **_) -> None:
    """The model.* values AlignmentModule accepts (checked before anything is built or loaded)."""
    check_speed(attention, "model")
    if timestep_sampling not in flow.SAMPLING:
        raise ValueError(f"model.timestep_sampling={timestep_sampling!r}: choose one of {flow.SAMPLING}")
    if loss_weighting not in flow.WEIGHTING:
        raise ValueError(f"model.loss_weighting={loss_weighting!r}: choose one of {flow.WEIGHTING}")
    for k in ("r", "lora_alpha"):
        v = (lora or {}).get(k)
        if generator_train == "lora" and v is not None and not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"model.lora.{k}={v}: must be a number > 0")
    check_prompt_recipe(prompt_recipe, "model.prompt_recipe")
    check_init_from(init_from, connector, prompt_recipe, context_len, generator_train, conditioning)
    if generator_train not in GENERATOR_TRAIN:
        raise ValueError(f"model.generator_train={generator_train!r}: choose one of {GENERATOR_TRAIN}")
    if conditioning not in CONDITIONING:
        raise ValueError(f"model.conditioning={conditioning!r}: choose one of {CONDITIONING}")
    if conditioning == "umt5" and generator_train == "frozen":
        raise ValueError("model.conditioning=umt5 trains no connector, so model.generator_train=frozen would train "
                         "nothing: use generator_train=full or lora")
    if not 0.0 <= cfg_dropout < 1.0:
        raise ValueError(f"model.cfg_dropout={cfg_dropout} must lie in [0, 1)")
    if not 0.0 <= umt5_dropout < 1.0:
        raise ValueError(f"model.umt5_dropout={umt5_dropout} must lie in [0, 1)")
    if umt5_dropout and conditioning == "umt5":
        raise ValueError("model.umt5_dropout drops the UMT5 half of the connector's context; with "
                         "model.conditioning=umt5 use model.cfg_dropout instead")
    if warmup_steps < 0 or not lr > 0 or (connector_lr is not None and not connector_lr > 0):
        raise ValueError(f"model.warmup_steps={warmup_steps} must be >= 0, model.lr={lr} and "
                         f"model.connector_lr={connector_lr} > 0")


class AlignmentModule(L.LightningModule):
    def __init__(self, wan_path: str, vlm_path: str | None = None, connector: dict | None = None,
                 generator_train: str = "full", lora: dict | None = None, gradient_checkpointing: bool = False,
                 context_len: int = 2560, instruction: str = INSTRUCTION, null_features: str | None = None,
                 encoder_dtype: str = "fp32", cfg_dropout: float = 0.2, shift: float = 3.0,
                 timestep_sampling: str = "uniform", loss_weighting: str = "none", lr: float = 1e-5,
                 connector_lr: float | None = None, weight_decay: float = 1e-4, betas: tuple = (0.9, 0.999),
                 warmup_steps: int = 500, total_steps: int | None = None, seed: int = 0, random_init: bool = False,
                 conditioning: str = "connector", umt5_dropout: float = 0.0, text_len: int = WAN_TEXT_LEN,
                 attention: str | None = None, compile: bool = False, load_at_once: int = 0,
                 init_from: str | None = None, prompt_recipe: str = "chat_template", vlm_dtype: str | None = None):
        super().__init__()
        check_training_settings(generator_train, cfg_dropout, warmup_steps, lr, connector_lr, conditioning,
                                umt5_dropout, attention, init_from=init_from, connector=connector,
                                prompt_recipe=prompt_recipe, context_len=context_len,
                                timestep_sampling=timestep_sampling, loss_weighting=loss_weighting, lora=lora)
        self.save_hyperparameters(logger=False)     # the logger gets the whole run from RunRecord instead
        self.connector_config = ConnectorConfig(**(connector or {}))
        self.transformer = self.connector = None
        self.encoders: FrozenEncoders | None = None    # a plain attribute: not a submodule, never checkpointed
        self._null: dict[str, torch.Tensor] | None = None
        self._grad_norm: torch.Tensor | None = None

    # ---- building -------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.transformer is not None:
            return
        hp = self.hparams
        init = hp.get("init_from")
        if init:     # a stage-1 export (e.g. the converted release): its generator and connector are the start
            from diffusers import WanTransformer3DModel
            self.transformer = WanTransformer3DModel.from_pretrained(Path(init) / "transformer")
        else:
            self.transformer = load_transformer(hp.wan_path, random_init=hp.random_init)
        if self.uses_connector:
            if self.transformer.config.text_dim != self.connector_config.out_dim:
                raise ValueError(f"connector.out_dim={self.connector_config.out_dim} must equal the generator's "
                                 f"text_dim={self.transformer.config.text_dim}")
            self.connector = OmniConnector(self.connector_config)
            if init:
                self.connector.load_state_dict(load_file(str(Path(init) / "connector" / "model.safetensors")))
        self.transformer.train(hp.generator_train != "frozen")   # from_pretrained returns eval mode
        if hp.generator_train != "full":
            self.transformer.requires_grad_(False)
        if hp.generator_train == "lora":
            from peft import LoraConfig
            cfg = dict(r=16, lora_alpha=16, target_modules=["to_q", "to_k", "to_v", "to_out.0"]) | (hp.lora or {})
            self.transformer.add_adapter(LoraConfig(**cfg))   # diffusers' PEFT integration: only LoRA trains
        speed_up(self.transformer, hp.get("attention"), hp.get("compile", False))
        if hp.gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
            if self.connector is not None:
                self.connector.gradient_checkpointing = True

    @property
    def uses_connector(self) -> bool:
        return self.hparams.get("conditioning", "connector") == "connector"

    def setup(self, stage: str) -> None:
        # Build here, before Lightning's configure_model call: under ZeRO-3 that call runs inside
        # deepspeed.zero.Init, where diffusers' from_pretrained (meta-device init) fails; DeepSpeed partitions
        # the already-built parameters when its engine starts instead.
        if self._trainer is not None:         # model.load_at_once ranks of a node load at a time
            t = self.trainer
            in_turns(self._load, t.local_rank, t.num_devices, self.hparams.get("load_at_once", 0), t.strategy.barrier)
        else:
            self._load()

    def _load(self) -> None:
        self.configure_model()
        hp = self.hparams
        if hp.null_features:          # precomputed features: no encoder in memory at all
            self._null = load_null_features(hp.null_features)
            return
        init_null = init_from_info(hp.get("init_from")).get("null")
        if init_null:                 # the release was trained with these null conditions (context.pkl)
            self._null = load_null_features(Path(hp.init_from) / init_null)
        if self.encoders is None:
            device = self.trainer.strategy.root_device if self._trainer is not None else "cpu"
            self.encoders = FrozenEncoders.load(hp.wan_path, hp.vlm_path if self.uses_connector else None,
                                                DTYPES[hp.encoder_dtype], hp.instruction, device,
                                                prompt_recipe=hp.get("prompt_recipe", "chat_template"),
                                                vlm_dtype=DTYPES[hp.get("vlm_dtype") or hp.encoder_dtype])

    def on_fit_start(self) -> None:
        if self.encoders is not None:
            self.encoders.to(self.device)
            if self._null is None:    # the CFG null condition: the empty prompt's features, computed once
                self._null = {k: v[0] for k, v in self.encoders.prompts([""]).items()}
        self._null = {k: v.to(self.device) for k, v in self._null.items()}
        self._table = tuple(t.to(self.device) for t in flow.timestep_table(self.hparams.shift))

    # ---- the step -------------------------------------------------------------------------------------------
    def _features(self, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        if "latents" in batch:
            return batch["latents"], list(batch["umt5"]), list(batch.get("vlm", []))
        if self.encoders is None:
            raise ValueError("this batch holds raw video but the module was built for precomputed features "
                             "(model.null_features is set): point data.kind at features shards")
        p = self.encoders.prompts(list(batch["caption"]))
        return self.encoders.latents(batch["video"]), p["umt5"], p.get("vlm", [])

    def _generators(self) -> tuple[torch.Generator, torch.Generator]:
        """Per-(seed, step, rank) randomness (CPU for the small draws, the device for the noise), so a resumed
        run draws exactly what an unbroken one would."""
        seed = self.hparams.seed * 1_000_003 + self.global_step * 8191 + self.global_rank
        cpu = torch.Generator().manual_seed(seed)
        return cpu, (cpu if self.device.type == "cpu" else torch.Generator(self.device).manual_seed(seed))

    def compute_loss(self, batch: dict) -> torch.Tensor:
        x0, umt5, vlm = self._features(batch)
        dtype = self.transformer.dtype        # diffusers' rule: not the fp32-kept modules
        x0, b = x0.to(dtype), x0.shape[0]
        g_cpu, g_dev = self._generators()
        # CFG dropout: replace both conditions by the empty prompt's (Omni-Video, p = 0.2)
        drop = torch.rand(b, generator=g_cpu) < self.hparams.cfg_dropout
        if self.hparams.umt5_dropout:
            # the UMT5 half alone also replaced: on prompts UMT5 already describes, the generator otherwise has no
            # need to read the connector's tokens (docs/lab.md: with UMT5 present it does not)
            drop_umt5 = drop | (torch.rand(b, generator=g_cpu) < self.hparams.umt5_dropout)
        else:
            drop_umt5 = drop
        umt5 = [self._null["umt5"] if d else u for u, d in zip(umt5, drop_umt5.tolist())]
        if self.connector is None:      # conditioning=umt5: Wan's own context
            context = wan_context([u.to(dtype) for u in umt5], self.hparams.text_len)
        else:
            vlm = [self._null["vlm"] if d else v for v, d in zip(vlm, drop.tolist())]
            hidden, mask = pad_tokens([v.to(dtype) for v in vlm])
            tokens = self.connector(hidden, mask, video=x0.shape[2] > 1)
            context = small_context(tokens, umt5, self.connector.markers, self.hparams.context_len)
        sigma, t = flow.sample_timesteps(*self._table, b, self.hparams.timestep_sampling, generator=g_cpu)
        noise = torch.randn(x0.shape, generator=g_dev, device=self.device, dtype=dtype)
        # timesteps stay fp32 (bf16 would round 999.7 to 1000): Wan casts after its sinusoidal projection
        pred = self.transformer(flow.noisy_latents(x0, noise, sigma), t, context, return_dict=False)[0]
        return flow.flow_loss(pred, x0, noise, sigma, self.hparams.loss_weighting)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.flops_per_batch = self.batch_flops(batch)     # read by ThroughputMonitor for MFU on GPUs
        loss = self.compute_loss(batch)
        bad = not bool(torch.isfinite(loss.detach()))
        if self.trainer.strategy.reduce_boolean_decision(bad, all=False):
            ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at step {self.global_step}: training stopped. The last good "
                f"checkpoint is kept ({ckpt}); lower the learning rate or check the data, then rerun to resume.")
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch_size(batch))
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "counts"):        # lost samples so far, by kind (ShardDataModule)
            self.log_dict(dm.counts(), batch_size=batch_size(batch))
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        norms = grad_norm(self, norm_type=2)
        if "grad_2.0_norm_total" in norms:
            self.log("train/grad_norm", norms["grad_2.0_norm_total"])

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        engine = getattr(self.trainer.strategy, "deepspeed_engine", None)
        if engine is not None and engine.get_global_grad_norm() is not None:  # ZeRO keeps grads partitioned
            self.log("train/grad_norm", float(engine.get_global_grad_norm()))

    def batch_flops(self, batch: dict, hardware: bool = False) -> float:
        """Model FLOPs of a batch (MFU); hardware=True adds the forwards gradient checkpointing recomputes (HFU)."""
        b, tokens = batch_size(batch), batch_latent_tokens(batch)
        recompute = hardware and bool(self.hparams.gradient_checkpointing)
        vlm = sum(len(v) for v in batch["vlm"]) / b if "vlm" in batch else 256   # raw: a typical prompt length
        if self.connector is None:
            return b * train_flops_per_sample(dict(self.transformer.config), None, tokens // b, self.hparams.text_len, 0,
                                              self.hparams.generator_train, recompute)
        return b * train_flops_per_sample(dict(self.transformer.config), self.connector_config.to_dict(),
                                          tokens // b, self.hparams.context_len, int(vlm), self.hparams.generator_train,
                                          recompute)

    # ---- optimisation ---------------------------------------------------------------------------------------
    def trainable_parameters(self) -> list[dict]:
        hp = self.hparams
        groups = [] if self.connector is None else [
            {"params": [p for p in self.connector.parameters() if p.requires_grad], "lr": hp.connector_lr or hp.lr,
             "name": "connector"}]
        gen = [p for p in self.transformer.parameters() if p.requires_grad]
        if gen:
            groups.append({"params": gen, "lr": hp.lr, "name": "generator"})
        return groups

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.trainable_parameters(), lr=hp.lr, weight_decay=hp.weight_decay,
                                betas=tuple(hp.betas))
        total = hp.total_steps or self.trainer.max_steps
        if not total or total < 0:
            raise ValueError("set trainer.max_steps (or model.total_steps) so the cosine schedule knows its length")
        sched = get_cosine_schedule_with_warmup(opt, min(hp.warmup_steps, total), total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- checkpoints: only trainable state, plus what export needs to rebuild the layout ---------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        config = {k: v for k, v in self.transformer.config.items() if not k.startswith("_")}  # no paths: torch.load(weights_only)
        checkpoint["nexus"] = {"transformer_config": config,
                               "connector_config": self.connector_config.to_dict() if self.connector is not None else None,
                               "conditioning": self.hparams.get("conditioning", "connector"),
                               "text_len": self.hparams.get("text_len", WAN_TEXT_LEN),
                               "context_len": self.hparams.context_len,
                               "wan_path": str(self.hparams.wan_path),
                               "generator_train": self.hparams.generator_train,
                               "prompt_recipe": self.hparams.get("prompt_recipe", "chat_template"),
                               "init_from": self.hparams.get("init_from"),
                               "lora": self.hparams.lora}
