"""LumosNexusPipeline: UPFB text-to-video as a diffusers pipeline (paper Sec. 3.3, Algorithm 1).

    pipe = LumosNexusPipeline.from_pretrained("exports/lumos-nexus", large="models/Wan2.1-T2V-14B")
    video = pipe("a red square slides left", num_frames=81, generator=torch.Generator().manual_seed(0)).frames[0]

One `__call__` in diffusers' order: check the inputs, encode the prompts (UMT5 for both generators; the VLM and the
connector for the small one), prepare the latents, denoise (nexus.upfb.sampler: both generators guided, their
velocities bridged by the strategy), decode with the shared VAE. tools/sample.py, its Lightning module
(nexus.inference.module) and evaluation during training all sample through it.
"""
from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.wan.pipeline_output import WanPipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor

from nexus.models import codec
from nexus.models.conditioning import WAN_TEXT_LEN, pad_tokens, small_context, wan_context
from nexus.models.connector import full_markers
from nexus.models.encoders import FrozenEncoders
from nexus.models.understanding import INSTRUCTION
from nexus.pipelines.placement import PhasePlacement
from nexus.shapes import check_clip_shape, latent_shape
from nexus.upfb.sampler import BridgeConfig, Side, sample

OUTPUT_TYPES = ("np", "pt", "pil", "latent")
KNOBS = tuple(f.name for f in fields(BridgeConfig))


class LumosNexusPipeline(DiffusionPipeline):
    r"""Two Wan generators bridged by UPFB.

    Components: `vae`, `tokenizer` and `text_encoder` (UMT5, shared by both generators), `scheduler` (a flow
    scheduler: UniPC, nexus's reference UniPC, or FlowMatch Euler), `transformer` (the large generator; Wan2.2-A14B's
    low-noise expert is `transformer_2`, taking over below `boundary_ratio` x 1000), `transformer_small` (the small
    generator), `connector`, `vlm` and `vlm_tokenizer` (the understanding block feeding the small generator; without
    a connector the small generator reads UMT5 alone, the stock-Wan baseline). A strategy that skips a generator
    needs only its own parts."""
    model_cpu_offload_seq = "text_encoder->vlm->connector->transformer_small->transformer->transformer_2->vae"
    _optional_components = ["transformer", "transformer_2", "transformer_small", "connector", "vlm", "vlm_tokenizer"]
    _callback_tensor_inputs = ["latents", "velocity"]

    def __init__(self, vae, tokenizer, text_encoder, scheduler, transformer=None, transformer_2=None,
                 transformer_small=None, connector=None, vlm=None, vlm_tokenizer=None,
                 boundary_ratio: float | None = None, text_len: int = WAN_TEXT_LEN, context_len: int = 2560,
                 prompt_recipe: str = "chat_template", instruction: str = INSTRUCTION):
        super().__init__()
        self.register_modules(vae=vae, tokenizer=tokenizer, text_encoder=text_encoder, scheduler=scheduler,
                              transformer=transformer, transformer_2=transformer_2,
                              transformer_small=transformer_small, connector=connector, vlm=vlm,
                              vlm_tokenizer=vlm_tokenizer)
        self.register_to_config(boundary_ratio=boundary_ratio, text_len=text_len, context_len=context_len,
                                prompt_recipe=prompt_recipe, instruction=instruction)
        self.video_processor = VideoProcessor(vae_scale_factor=8)
        self.null: dict | None = None          # the release's null conditions {'umt5', 'vlm'}; None: the empty prompt
        self.placement: PhasePlacement | None = None
        self.sources: dict[str, str | None] = {}      # the folders the components came from (save_pretrained)
        self.info: dict = {}                          # the stage-1 export's nexus.json (provenance)
        self._interrupt = False

    # ---- loading and saving (nexus.pipelines.folder) ----------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs) -> "LumosNexusPipeline":
        """A pipeline folder (save_pretrained, tools/export.py) or a stage-1 export (tools/convert.py omnivideo).
        kwargs: source folders overriding the folder's (`wan`, `small`, `large`, `vlm`), `torch_dtype`,
        `strategy` (load only what it runs), `scheduler` / `shift` (by name), or components to use as given."""
        from nexus.pipelines.folder import load_pipeline
        return load_pipeline(cls, folder, **kwargs)

    @classmethod
    def from_sources(cls, wan: str, small: str | None = None, large: str | None = None, vlm: str | None = None,
                     **kwargs) -> "LumosNexusPipeline":
        """Built straight from the four source folders (nexus.pipelines.parts), as tools/sample.py does."""
        from nexus.pipelines.folder import build
        return build(cls, {"wan": wan, "small": small, "large": large, "vlm": vlm}, **kwargs)

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """model_index.json naming the source folders (nothing frozen is copied), scheduler/, and the parts that have
        no source folder (a connector or small generator made in memory) in the export layout; nexus.json."""
        from nexus.pipelines.folder import save_pipeline
        save_pipeline(self, Path(save_directory))

    # ---- placement -----------------------------------------------------------------------------------------
    def enable_phase_offload(self, device: str | torch.device = "cuda", offload: str = "model",
                             encoders: str = "device", small_device: str = "same", pinned: tuple = ()) -> None:
        """nexus's placement (nexus.pipelines.placement): per phase, only what the phase runs on `device`; both
        generators stay there while sampling (diffusers' model offload would move them every step)."""
        self.placement = PhasePlacement(torch.device(device), offload, encoders, small_device, tuple(pinned))

    def _place(self, phase: str) -> None:
        if self.placement is not None:
            self.placement.place(self, phase)

    @property
    def _execution_device(self) -> torch.device:
        if self.placement is not None:
            return self.placement.device
        return super()._execution_device

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    # ---- the steps of __call__ -----------------------------------------------------------------------------
    def check_inputs(self, prompt, negative_prompt, height, width, num_frames, num_inference_steps, guidance,
                     latents, output_type, callback_on_step_end_tensor_inputs, bridge) -> BridgeConfig:
        if not (isinstance(prompt, str) or (isinstance(prompt, (list, tuple)) and prompt
                                            and all(isinstance(p, str) for p in prompt))):
            raise ValueError(f"prompt={prompt!r}: a string or a non-empty list of strings")
        n = 1 if isinstance(prompt, str) else len(prompt)
        if negative_prompt is not None and not isinstance(negative_prompt, str) and (
                not isinstance(negative_prompt, (list, tuple)) or len(negative_prompt) != n):
            raise ValueError(f"negative_prompt: a string or a list of {n} strings (one per prompt), got "
                             f"{negative_prompt!r}")
        check_clip_shape(num_frames, height, width, keys=("num_frames", "height", "width"))
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={num_inference_steps!r}: at least 1 step")
        for name, g in guidance.items():
            if g is not None and not math.isfinite(g):
                raise ValueError(f"{name}={g}: a finite guidance scale")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r}: choose one of {OUTPUT_TYPES}")
        bad = [k for k in callback_on_step_end_tensor_inputs or () if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback_on_step_end_tensor_inputs: {bad} are not among {self._callback_tensor_inputs}")
        want = (n, *latent_shape(num_frames, height, width))
        if latents is not None and tuple(latents.shape) != want:
            raise ValueError(f"latents has shape {tuple(latents.shape)}; {n} prompt(s) of {num_frames}x{height}x"
                             f"{width} need {want}")
        need_small, need_large = bridge.needs
        fixes = {"transformer_small": "load the pipeline without strategy='large_only'",
                 "transformer": "pass large=<Wan2.1-T2V-14B or Wan2.2-T2V-A14B folder> to from_pretrained (or "
                                "tools/export.py --large), or sample with strategy='small_only'"}
        for needed, part in ((need_small, "transformer_small"), (need_large, "transformer")):
            if needed and getattr(self, part, None) is None:
                raise ValueError(f"strategy={bridge.strategy!r} runs {part}, which this pipeline was loaded without: "
                                 f"{fixes[part]}")
        if need_small and self.connector is not None and self.vlm is None:
            raise ValueError("the connector reads the VLM, which this pipeline has not: pass vlm=<folder>")
        return bridge

    def bridge_config(self, bridge: BridgeConfig | dict | None, knobs: dict) -> BridgeConfig:
        """`bridge` (a BridgeConfig or a dict of its fields) with the knobs given as arguments laid over it."""
        unknown = [k for k in knobs if k not in KNOBS]
        if unknown:
            raise TypeError(f"LumosNexusPipeline.__call__ got unexpected argument(s) {unknown}; the bridge knobs are "
                            f"{KNOBS}")
        base = bridge.__dict__ if isinstance(bridge, BridgeConfig) else dict(bridge or {})
        return BridgeConfig(**{**base, **{k: v for k, v in knobs.items() if v is not None}})

    @torch.no_grad()
    def encode_prompt(self, prompt: list[str], negative_prompt: str | list[str] | None = None,
                      video: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (small, small_null, large, large_null) contexts. The null condition is the negative prompt's, else the
        release's null conditions when the pipeline has them (both generators, as the reference), else the empty
        prompt's (one row for every prompt)."""
        self._place("encode")
        n = len(prompt)
        null = self.null if negative_prompt is None else None
        negatives = [] if null is not None else [""] if negative_prompt is None else \
            [negative_prompt] * n if isinstance(negative_prompt, str) else list(negative_prompt)
        encoders = FrozenEncoders(None, self.tokenizer, self.text_encoder,
                                  self.vlm_tokenizer if self.connector is not None else None,
                                  self.vlm if self.connector is not None else None,
                                  self.config.instruction, self.config.prompt_recipe)
        feats = encoders.prompts(list(prompt) + negatives)
        if null is not None:
            dev = next(self.text_encoder.parameters()).device
            feats["umt5"].append(null["umt5"].to(dev))
            if "vlm" in feats:
                feats["vlm"].append(null["vlm"].to(dev))
        dt = self.context_dtype
        umt5 = [u.to(dt) for u in feats["umt5"]]
        large = wan_context(umt5, self.config.text_len)
        if self.connector is None:                       # baseline: the stock small generator reads UMT5 only
            small = large
        else:
            hidden, mask = pad_tokens([v.to(dt) for v in feats["vlm"]])
            q = self.connector(hidden, mask, video=video)
            small = small_context(q, umt5, full_markers(self.connector), self.config.context_len)
        device = self._execution_device
        small_dev = self.placement.small_device if self.placement is not None else device
        small, large = small.to(small_dev), large.to(device)
        return small[:n], small[n:], large[:n], large[n:]

    @property
    def context_dtype(self) -> torch.dtype:
        """The dtype the contexts are built in: the connector's, else the first generator's."""
        m = next(m for m in (self.connector, self.transformer_small, self.transformer) if m is not None)
        return getattr(m, "dtype", None) or next(m.parameters()).dtype

    def prepare_latents(self, batch: int, num_frames: int, height: int, width: int, generator=None,
                        latents: torch.Tensor | None = None, device=None) -> torch.Tensor:
        """(batch, 16, F, h, w) fp32 noise from `generator` (one, or one per prompt), or the `latents` given."""
        if latents is not None:
            return latents.to(device=device, dtype=torch.float32)
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"generator: {len(generator)} generators for {batch} prompt(s); pass one or one each")
        return randn_tensor((batch, *latent_shape(num_frames, height, width)), generator=generator, device=device,
                            dtype=torch.float32)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Sampled latents -> videos (B, 3, T, H, W) in [-1, 1], with the shared VAE."""
        self._place("decode")
        weight = next(self.vae.parameters())
        return torch.cat([codec.decode_latents(self.vae, z[None].to(weight.device, weight.dtype)) for z in latents])

    # ---- the call ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, prompt: str | list[str], negative_prompt: str | list[str] | None = None, height: int = 480,
                 width: int = 832, num_frames: int = 81, num_inference_steps: int = 50, guidance_scale: float = 5.0,
                 guidance_scale_2: float | None = None, guidance_scale_small: float | None = None, generator=None,
                 latents: torch.Tensor | None = None, output_type: str = "np", return_dict: bool = True,
                 attention_kwargs: dict | None = None, callback_on_step_end=None,
                 callback_on_step_end_tensor_inputs: list[str] = ("latents",),
                 bridge: BridgeConfig | dict | None = None, **knobs):
        r"""Sample one video per prompt.

        guidance_scale: the large generator's (paper Eq. 2-3; `bridge.cfg_form` chooses the paper's or diffusers'
        form), guidance_scale_2: Wan2.2-A14B's low-noise expert (default: guidance_scale), guidance_scale_small:
        the small generator's (default: guidance_scale). bridge / knobs: nexus.upfb.sampler.BridgeConfig (strategy,
        gamma_w, gamma_hf, sigma_min, sigma_max, clock, rms, kernel, cfg_form, switch_step, batched_cfg).
        callback_on_step_end(pipe, i, t, callback_kwargs) may return new `latents`; `pipe._interrupt = True` stops.
        Returns WanPipelineOutput(frames=...) with frames as `output_type`: np (B, T, H, W, 3) in [0, 1], pt
        (B, T, 3, H, W), pil (lists of images) or latent (the sampled latents)."""
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        cfg = self.check_inputs(prompt, negative_prompt, height, width, num_frames, num_inference_steps,
                                {"guidance_scale": guidance_scale, "guidance_scale_2": guidance_scale_2,
                                 "guidance_scale_small": guidance_scale_small}, latents, output_type,
                                callback_on_step_end_tensor_inputs, self.bridge_config(bridge, knobs))
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        self._interrupt, self._num_timesteps = False, num_inference_steps
        device = self._execution_device
        cs, cs0, cl, cl0 = self.encode_prompt(prompts, negative_prompt, video=num_frames > 1)
        z = self.prepare_latents(len(prompts), num_frames, height, width, generator, latents, device)
        need_small, need_large = cfg.needs
        small = Side(self.transformer_small, cs, cs0, guidance_scale if guidance_scale_small is None
                     else guidance_scale_small, attention_kwargs=attention_kwargs) if need_small else None
        swap = (lambda m: self.placement.swap(self, m)) if self.placement is not None else None
        large = Side(self.transformer, cl, cl0, guidance_scale, self.transformer_2, self.config.boundary_ratio,
                     guidance_scale_2, on_expert=swap, attention_kwargs=attention_kwargs) if need_large else None

        def step_end(i, t, latents_i, velocity):
            if callback_on_step_end is not None:
                scope = {"latents": latents_i, "velocity": velocity}
                out = callback_on_step_end(self, i, t, {k: scope[k] for k in callback_on_step_end_tensor_inputs})
                latents_i = (out or {}).get("latents", latents_i)
            return latents_i, self._interrupt

        self._place("sample")
        concurrent = self.placement is not None and self.placement.small != "same"
        z = sample(z, self.scheduler, num_inference_steps, cfg, small, large,
                   progress=not getattr(self, "_progress_bar_config", {}).get("disable", False),
                   concurrent=concurrent, callback=step_end)
        if output_type == "latent":
            frames = z
        else:
            frames = self.video_processor.postprocess_video(self.decode_latents(z).float(), output_type=output_type)
        self.maybe_free_model_hooks()
        return WanPipelineOutput(frames=frames) if return_dict else (frames,)
