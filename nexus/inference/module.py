"""UPFB inference as a LightningModule: `Trainer.predict` spreads prompts over devices, `predict_step`
turns prompts into videos (paper Sec. 3.3, Algorithm 1).

Loaded once, on the CPU: the frozen large generator (any diffusers Wan folder; Wan2.2-A14B's second expert and
boundary_ratio come from its model_index.json), the small generator + connector from a stage-1 export (or the
stock small Wan folder with a UMT5-only context, the baseline), the shared VAE, UMT5 and the VLM. None of them is
a submodule: Lightning never moves them all to the device at once. Each batch runs three phases, and before each
the placement (sampling.offload, sampling.encoders; nexus.plan.sample) puts on the device what the phase runs:
encode (UMT5, VLM, connector), sample (the generators; of Wan2.2-A14B's experts the active one), decode (VAE).
Each video is written as <out_dir>/<prompt id>.mp4 (atomically; a finished one is skipped, so a killed job
resumes) with a noise seed derived from (seed, prompt id).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import numpy as np
import torch

from nexus.data.video import write_mp4
from nexus.export import load_connector
from nexus.models import codec
from nexus.models.connector import full_markers
from nexus.models.conditioning import WAN_TEXT_LEN, pad_tokens, small_context, wan_context
from nexus.models.encoders import FrozenEncoders
from nexus.models.latent_space import check_latent_space
from nexus.models.loading import DTYPES, load_transformer, read_config
from nexus.models.speed import check_speed, speed_up
from nexus.models.understanding import INSTRUCTION
from nexus.inference.placement import check_placement, resident
from nexus.shapes import check_clip_shape, latent_shape
from nexus.upfb.sampler import BridgeConfig, Side, sample

# unipc: diffusers' UniPC flow schedule; unipc_reference: the same solver on the released model's (Wan FlowUniPC)
# sigmas (nexus.upfb.solver); euler: FlowMatch Euler
SCHEDULERS = ("unipc", "unipc_reference", "euler")


def prompt_seed(seed: int, prompt_id: str) -> int:
    return int(hashlib.sha256(f"{seed}:{prompt_id}".encode()).hexdigest()[:8], 16)


def make_scheduler(name: str, shift: float):
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
    if name == "unipc":
        return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift)
    if name == "unipc_reference":
        from nexus.upfb.solver import reference_unipc
        return reference_unipc(shift)
    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(shift=shift)
    raise ValueError(f"scheduler={name!r}: choose one of {SCHEDULERS}")


def distinct_steps(scheduler: str, shift: float, num_steps: int) -> int:
    """How many distinct timesteps the scheduler makes for num_steps. Its timesteps are integers: with a shift,
    past a few hundred steps some coincide, and diffusers' UniPC then fails mid-sampling (`this_order > 0`)."""
    s = make_scheduler(scheduler, shift)
    s.set_timesteps(num_steps)
    return len(set(s.timesteps.tolist()))


def check_settings(num_frames: int, height: int, width: int, num_steps: int, scheduler: str, dtype: str,
                   bridge: dict | None, shift: float | None = None) -> BridgeConfig:
    """The sampling settings (sampling.*, bridge.*) a BridgeModule accepts, checked before anything loads."""
    check_clip_shape(num_frames, height, width, where="sampling")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"sampling.scheduler={scheduler!r}: choose one of {SCHEDULERS}")
    if dtype not in DTYPES:
        raise ValueError(f"sampling.dtype={dtype!r}: choose one of {sorted(DTYPES)}")
    if num_steps < 1:
        raise ValueError(f"sampling.num_steps={num_steps}: at least 1 sampling step")
    if shift is not None and num_steps > 100 and distinct_steps(scheduler, shift, num_steps) < num_steps:
        most = next(n for n in range(num_steps - 1, 0, -1) if distinct_steps(scheduler, shift, n) == n)
        raise ValueError(f"sampling.num_steps={num_steps}: with sampling.shift={shift} the {scheduler} schedule "
                         f"repeats timesteps (they are integers in 0..1000); use at most {most} steps")
    try:
        return BridgeConfig(**(bridge or {}))
    except TypeError as e:        # an unknown knob
        raise ValueError(f"bridge: {e}; the knobs are those of nexus.upfb.sampler.BridgeConfig") from None


def to_frames(video: torch.Tensor, truncate: bool = False) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3), rounded; truncate: as Wan's cache_video (x * 255 cast to uint8,
    which the reference writes)."""
    v = video.float().clamp(-1, 1)
    x = ((v + 1) / 2 * 255) if truncate else ((v + 1) * 127.5).round()
    return x.to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()


NOISE = ("per_prompt", "reference")
VIDEO = ("nexus", "reference")
REFERENCE_CRF = 10      # imageio's quality=8 for libx264 (Wan's cache_video): crf int((1 - 8/10) * 51)


def check_release_settings(noise: str, video: str, vlm_dtype: str | None) -> None:
    if noise not in NOISE:
        raise ValueError(f"sampling.noise={noise!r}: choose one of {NOISE}")
    if video not in VIDEO:
        raise ValueError(f"sampling.video={video!r}: choose one of {VIDEO}")
    if vlm_dtype is not None and vlm_dtype not in DTYPES:
        raise ValueError(f"sampling.vlm_dtype={vlm_dtype!r}: choose one of {sorted(DTYPES)} or null (the export's, "
                         f"else sampling.dtype)")


def initial_noise(shape: tuple, seed: int, prompt_id: str, mode: str, device: torch.device,
                  rank_offset: int = 0) -> torch.Tensor:
    """(1, *shape) fp32 noise. per_prompt: a CPU generator seeded from (seed, prompt id), so a video depends on its
    prompt only; reference: as the reference scripts draw it, on the device with a generator seeded with
    seed + rank x stride for every prompt (VR-Bench: 35 and stride 0; the batch script: 42, stride 1000), which
    reproduces their noise on a CUDA device (Philox) but not across devices."""
    if mode == "reference":
        g = torch.Generator(device).manual_seed(seed + rank_offset)
        return torch.randn(1, *shape, generator=g, device=device, dtype=torch.float32)
    return torch.randn(1, *shape, generator=torch.Generator().manual_seed(prompt_seed(seed, prompt_id)))


def export_info(export: Path | None) -> dict:
    """An export's nexus.json ({} when there is none)."""
    return read_config(export / "nexus.json") if export is not None and (export / "nexus.json").is_file() else {}


def null_features(export: Path | None, info: dict) -> dict | None:
    """The export's null conditions {'umt5': (T, D), 'vlm': (L, d_vlm)} when nexus.json names a file, else None."""
    if not info.get("null"):
        return None
    from nexus.models.encoders import load_null_features
    return load_null_features(export / info["null"])


NETS = ("small", "large", "large_2", "connector", "vae")


class BridgeModule(L.LightningModule):
    pinned: tuple = ()           # models the placement never moves (eval in fit: the training run's own)

    def __init__(self, small_path: str, large_path: str, out_dir: str, export: str | None = None,
                 vlm_path: str | None = None, num_frames: int = 81, height: int = 480, width: int = 832,
                 num_steps: int = 50, scheduler: str = "unipc", shift: float = 5.0, seed: int = 0, fps: int = 16,
                 bridge: dict | None = None, guidance_small: float = 5.0, guidance_large: float = 5.0,
                 guidance_large_2: float | None = None, dtype: str = "bf16", allow_latent_mismatch: bool = False,
                 context_len: int = 2560, instruction: str = INSTRUCTION, progress: bool = True,
                 text_len: int = WAN_TEXT_LEN, offload: str = "model", encoders: str = "device",
                 vae_tiling: bool = False, attention: str | None = None, compile: bool = False,
                 small_device: str = "same", prompt_recipe: str | None = None, vlm_dtype: str | None = None,
                 noise: str = "per_prompt", rank_seed_stride: int = 0, video: str = "nexus"):
        super().__init__()
        self.bridge_config = check_settings(num_frames, height, width, num_steps, scheduler, dtype, bridge, shift)
        check_release_settings(noise, video, vlm_dtype)
        check_placement(offload, encoders, small_device)
        check_speed(attention, "sampling")
        self.save_hyperparameters()
        self.small = self.large = self.large_2 = self.connector = self.vae = None
        self.encoders: FrozenEncoders | None = None
        self._grouped: list = []

    def __setattr__(self, name, value):
        if name in NETS:          # a plain attribute, not a submodule: the placement moves it, not Lightning
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ---- loading --------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.large is not None:
            return
        from diffusers import WanTransformer3DModel
        hp, dt = self.hparams, DTYPES[self.hparams.dtype]
        need_small, need_large = self.bridge_config.needs
        if need_small and need_large:
            check_latent_space(hp.small_path, hp.large_path, hp.allow_latent_mismatch)
        export = Path(hp.export) if hp.export else None
        if export is not None:
            check_export(export, hp.vlm_path)
        if need_large:
            self.large, self.large_2 = load_large(hp.large_path, dt)
        if need_small:
            full = export / "transformer" if export is not None and (export / "transformer").is_dir() else None
            self.small = (WanTransformer3DModel.from_pretrained(full, torch_dtype=dt) if full is not None
                          else load_transformer(hp.small_path, dt)).eval()     # either Wan layout
            if export is not None and (export / "transformer_lora").is_dir():
                self.small.load_lora_adapter(export / "transformer_lora", prefix="transformer", use_safetensors=True)
            if export is not None:
                self.connector = load_connector(export / "connector", dtype=dt)
        info = export_info(export)
        self.encoders = FrozenEncoders.load(hp.small_path, hp.vlm_path if self.connector is not None else None,
                                            dt, hp.instruction, "cpu", prompt_recipe=self.prompt_recipe(info),
                                            vlm_dtype=DTYPES[hp.vlm_dtype or info.get("vlm_dtype") or hp.dtype])
        self.null = null_features(export, info)   # the release's null conditions (a file), or None: the empty prompt
        self.vae, self.encoders.vae = self.encoders.vae, None     # the VAE decodes on the generators' device
        if hp.vae_tiling:
            self.vae.enable_tiling()
        for m in (self.small, self.large, self.large_2):
            if m is not None:
                speed_up(m, hp.attention, hp.compile)
        for m in (self.small, self.large, self.large_2, self.connector, self.vae):
            if m is not None:
                m.requires_grad_(False)

    def setup(self, stage: str) -> None:
        self.configure_model()

    # ---- placement ------------------------------------------------------------------------------------------
    def place(self, phase: str) -> None:
        """Put on the device what `phase` (encode | sample | decode) runs (nexus.inference.placement.resident),
        every other model to the CPU first, so memory is freed before more arrives."""
        hp, enc = self.hparams, self.encoders
        models = {"umt5": enc.umt5, "vlm": enc.vlm, **{n: getattr(self, n) for n in NETS}}
        movable = {n: m for n, m in models.items() if m is not None and not any(m is p for p in self.pinned)
                   and not any(m is g for g in self._grouped)}
        want = resident(phase, hp.offload, hp.encoders)
        for name, m in movable.items():            # first free the device ...
            if name not in want:
                m.to("cpu")
        if phase == "sample" and hp.offload == "group":
            self._group_offload()
        for name, m in movable.items():            # ... then fill it
            if name in want and not any(m is g for g in self._grouped):
                m.to(self.small_device if name == "small" else self.device)

    def _group_offload(self) -> None:
        """diffusers' group offloading of the generators: blocks stream in from the CPU, one ahead on a stream."""
        for m in (self.small, self.large, self.large_2):
            if m is None or any(m is p for p in self.pinned) or any(m is g for g in self._grouped):
                continue
            m.to("cpu")
            m.enable_group_offload(onload_device=self.small_device if m is self.small else self.device,
                                   offload_device=torch.device("cpu"),
                                   offload_type="block_level", num_blocks_per_group=1,
                                   use_stream=self.device.type == "cuda")
            self._grouped.append(m)

    @property
    def small_device(self) -> torch.device:
        """sampling.small_device: `same` (the rank's device), `next` (the CUDA device after it: give the ranks
        every other GPU, e.g. trainer.devices=[0,2,4,6]) or a device name."""
        want = self.hparams.get("small_device", "same")
        if want == "same":
            return self.device
        if want == "next":
            if self.device.type != "cuda" or self.device.index + 1 >= torch.cuda.device_count():
                raise ValueError(f"sampling.small_device=next: no CUDA device after {self.device}; give each rank "
                                 f"every other GPU (trainer.devices=[0,2,...]) or use small_device=same")
            return torch.device("cuda", self.device.index + 1)
        return torch.device(want)

    def swap_expert(self, model: torch.nn.Module) -> None:
        """Wan2.2-A14B under offload=model: the expert about to run comes to the device, the other leaves first."""
        if self.hparams.offload != "model" or self.large_2 is None:
            return
        other = self.large_2 if model is self.large else self.large
        if any(model is p for p in self.pinned):
            return
        other.to("cpu")
        model.to(self.device)

    def boundary_ratio(self) -> float | None:
        index = Path(self.hparams.large_path) / "model_index.json"
        return read_config(index).get("boundary_ratio") if index.is_file() and self.large_2 is not None else None

    # ---- conditioning ---------------------------------------------------------------------------------------
    def prompt_recipe(self, info: dict) -> str:
        """sampling.prompt_recipe, else the export's (nexus.json), else today's chat template."""
        return self.hparams.get("prompt_recipe") or info.get("prompt_recipe") or "chat_template"

    @torch.no_grad()
    def contexts(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (small, small_null, large, large_null) contexts for the prompts, on the device (encoded where
        sampling.encoders says). The null condition is the export's null.safetensors when it has one (the release:
        unconditioned_context/context.pkl, used for both generators as the reference does), else the empty prompt."""
        self.place("encode")
        null = getattr(self, "null", None)
        feats = self.encoders.prompts(texts + ([] if null is not None else [""]))
        if null is not None:
            dev = next(self.encoders.umt5.parameters()).device
            feats["umt5"].append(null["umt5"].to(dev))
            if "vlm" in feats:
                feats["vlm"].append(null["vlm"].to(dev))
        dt = DTYPES[self.hparams.dtype]
        umt5 = [u.to(dt) for u in feats["umt5"]]
        large = wan_context(umt5, self.hparams.text_len)
        if self.connector is None:                       # baseline: the stock small generator reads UMT5 only
            small = large
        else:
            hidden, mask = pad_tokens([v.to(dt) for v in feats["vlm"]])
            q = self.connector(hidden, mask, video=self.hparams.num_frames > 1)
            small = small_context(q, umt5, full_markers(self.connector), self.hparams.context_len)
        small, large = small.to(self.small_device), large.to(self.device)
        return small[:-1], small[-1:], large[:-1], large[-1:]

    # ---- prediction -----------------------------------------------------------------------------------------
    def video_path(self, prompt_id: str) -> Path:
        return Path(self.hparams.out_dir) / f"{prompt_id}.mp4"

    @torch.no_grad()
    def predict_step(self, batch: list, batch_idx: int = 0) -> list[str]:
        todo = [p for p in batch if not self.video_path(p.id).exists()]
        if not todo:
            return []
        hp = self.hparams
        Path(hp.out_dir).mkdir(parents=True, exist_ok=True)
        cs, cs0, cl, cl0 = self.contexts([p.text for p in todo])
        boundary = self.boundary_ratio()
        # the prompts of a batch are denoised together (sampling.batch_size): each keeps its own noise (seeded by
        # its id), and every operation acts per sample, so a video does not depend on its batch (tested)
        z = torch.cat([initial_noise(latent_shape(hp.num_frames, hp.height, hp.width), hp.seed, p.id,
                                     hp.get("noise", "per_prompt"), self.device,
                                     self.global_rank * hp.get("rank_seed_stride", 0)) for p in todo])
        small = Side(self.small, cs, cs0, hp.guidance_small) if self.small is not None else None
        large = Side(self.large, cl, cl0, hp.guidance_large, self.large_2, boundary,
                     hp.guidance_large_2, on_expert=self.swap_expert) if self.large is not None else None
        self.place("sample")
        z = sample(z.to(self.device), make_scheduler(hp.scheduler, hp.shift), hp.num_steps, self.bridge_config, small,
                   large, progress=hp.progress, concurrent=hp.get("small_device", "same") != "same")
        written = []
        self.place("decode")
        for p, latent in zip(todo, z):
            video = codec.decode_latents(self.vae, latent[None].to(next(self.vae.parameters()).dtype))[0]
            path = self.video_path(p.id)
            reference = hp.get("video", "nexus") == "reference"
            write_mp4(path, to_frames(video, truncate=reference), hp.fps,   # atomic: never a half-written mp4
                      **({"crf": REFERENCE_CRF} if reference else {}))
            written.append(str(path))
        return written

    def on_predict_start(self) -> None:
        Path(self.hparams.out_dir).mkdir(parents=True, exist_ok=True)


def load_large(path: str | Path, dtype: torch.dtype):
    """The frozen large generator: (transformer, Wan2.2-A14B's low-noise expert `transformer_2` or None)."""
    from diffusers import WanTransformer3DModel
    from nexus.convert import wan as original
    large = Path(path)
    if original.is_original_wan(large):     # Wan-AI's own layout (Wan2.1-T2V-14B): one expert
        return original.load_original_transformer(large, dtype).requires_grad_(False), None
    first = WanTransformer3DModel.from_pretrained(large / "transformer", torch_dtype=dtype).eval()
    second = None
    if (large / "transformer_2" / "config.json").is_file():
        second = WanTransformer3DModel.from_pretrained(large / "transformer_2", torch_dtype=dtype).eval()
    return first.requires_grad_(False), second.requires_grad_(False) if second is not None else None


def check_lengths(small: str | None, large: str | None, export: Path | None, text_len: int,
                  context_len: int) -> None:
    """A generator trained here reads the context length it was trained with (Wan does not mask the padding keys):
    refuse sampling.text_len / sampling.context_len values that differ from what the folders' nexus.json record."""
    checks = [("paths.large", large, "text_len", text_len)] if large else []
    if small and export is None:         # the stock small generator reads a Wan context too
        checks.append(("paths.small", small, "text_len", text_len))
    if export is not None:               # a stage-1 small generator reads [connector ; UMT5] padded to context_len
        checks.append(("small.export", export, "context_len", context_len))
    for key, folder, what, want in checks:
        record = Path(folder) / "nexus.json"
        trained = read_config(record).get(what) if record.is_file() else None
        if trained is not None and trained != want:
            raise ValueError(f"{key}={folder} was trained with {what}={trained} (its nexus.json) but sampling.{what}="
                             f"{want}: sample it with sampling.{what}={trained}")


def check_export(export: Path, vlm_path: str | None) -> None:
    """A stage-1 export must hold a connector whose config fits the VLM it will read."""
    cfg = export / "connector" / "config.json"
    if vlm_path:
        from nexus.models.loading import vlm_hidden_size
        want, have = read_config(cfg)["vlm_dim"], vlm_hidden_size(vlm_path)
        if want != have:
            raise ValueError(f"the export's connector reads a VLM of hidden size {want} but paths.vlm={vlm_path} has "
                             f"{have}: use the VLM the connector was trained with")
    else:
        raise ValueError(f"small.export={export} has a connector, which reads the VLM: set paths.vlm")
