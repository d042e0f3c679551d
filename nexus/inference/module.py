"""UPFB inference as a LightningModule over the pipeline: `Trainer.predict` spreads prompts over devices,
`predict_step` turns a batch of prompts into videos with nexus.pipelines.LumosNexusPipeline (paper Sec. 3.3,
Algorithm 1).

The pipeline is loaded once, on the CPU (nexus.pipelines.parts: the frozen large generator, Wan2.2-A14B's second
expert with its boundary_ratio, the small generator + connector from a stage-1 export or the stock small Wan with a
UMT5-only context, the shared VAE, UMT5 and the VLM). It is not a submodule: Lightning never moves all of it to the
device at once; the pipeline's phase placement (sampling.offload, sampling.encoders; nexus.pipelines.placement,
nexus.plan.sample) puts on the rank's device what each phase runs. Each video is written as <out_dir>/<prompt id>.mp4
(atomically; a finished one is skipped, so a killed job resumes) with a noise seed derived from (seed, prompt id).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import numpy as np
import torch

from nexus.data.video import write_mp4
from nexus.models.conditioning import WAN_TEXT_LEN
from nexus.models.latent_space import check_latent_space
from nexus.models.loading import DTYPES, read_config
from nexus.models.speed import check_speed, speed_up
from nexus.models.understanding import INSTRUCTION
from nexus.pipelines.parts import check_export
from nexus.pipelines.placement import PhasePlacement, check_placement
from nexus.shapes import check_clip_shape, latent_shape
from nexus.upfb.sampler import BridgeConfig
from nexus.upfb.solver import SCHEDULERS, distinct_steps


def prompt_seed(seed: int, prompt_id: str) -> int:
    return int(hashlib.sha256(f"{seed}:{prompt_id}".encode()).hexdigest()[:8], 16)


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
        self.pipe = None

    def __setattr__(self, name, value):
        if name == "pipe":        # a plain attribute, not a submodule: the placement moves its models, not Lightning
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # the pipeline's generators under the sampler's names
    small = property(lambda self: self.pipe.transformer_small)
    large = property(lambda self: self.pipe.transformer)
    large_2 = property(lambda self: self.pipe.transformer_2)
    connector = property(lambda self: self.pipe.connector)
    vae = property(lambda self: self.pipe.vae)

    # ---- loading --------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.pipe is not None:
            return
        from nexus.pipelines import LumosNexusPipeline
        hp, dt = self.hparams, DTYPES[self.hparams.dtype]
        need_small, need_large = self.bridge_config.needs
        if need_small and need_large:
            check_latent_space(hp.small_path, hp.large_path, hp.allow_latent_mismatch)
        export = Path(hp.export) if hp.export else None
        if export is not None:
            check_export(export, hp.vlm_path)
        self.pipe = LumosNexusPipeline.from_sources(
            hp.small_path, str(export) if export else None, hp.large_path if need_large else None, hp.vlm_path,
            torch_dtype=dt, strategy=self.bridge_config.strategy, scheduler=hp.scheduler, shift=hp.shift,
            vlm_dtype=DTYPES[hp.vlm_dtype] if hp.vlm_dtype else None, text_len=hp.text_len,
            context_len=hp.context_len, prompt_recipe=hp.get("prompt_recipe"), instruction=hp.instruction)
        self.configure_pipeline()

    def configure_pipeline(self) -> None:
        """The sampling settings the pipeline does not take per call: VAE tiling, attention backend, compilation."""
        hp, pipe = self.hparams, self.pipe
        if hp.vae_tiling:
            pipe.vae.enable_tiling()
        for m in (pipe.transformer_small, pipe.transformer, pipe.transformer_2):
            if m is not None and not any(m is p for p in self.pinned):
                speed_up(m, hp.attention, hp.compile)
        pipe.set_progress_bar_config(disable=not hp.progress)

    def setup(self, stage: str) -> None:
        self.configure_model()

    # ---- placement ------------------------------------------------------------------------------------------
    def placement(self) -> PhasePlacement:
        """The pipeline's phase placement on this rank's device (made once the device is known)."""
        hp, pipe = self.hparams, self.pipe
        if pipe.placement is None or pipe.placement.device != self.device:
            pipe.enable_phase_offload(self.device, hp.offload, hp.encoders, hp.get("small_device", "same"),
                                      self.pinned)
        return pipe.placement

    def place(self, phase: str) -> None:
        """Put on the device what `phase` (encode | sample | decode) runs (nexus.pipelines.placement)."""
        self.placement().place(self.pipe, phase)

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
        self.placement()
        # the prompts of a batch are denoised together (sampling.batch_size): each keeps its own noise (seeded by
        # its id), and every operation acts per sample, so a video does not depend on its batch (tested)
        z = torch.cat([initial_noise(latent_shape(hp.num_frames, hp.height, hp.width), hp.seed, p.id,
                                     hp.get("noise", "per_prompt"), self.device,
                                     self.global_rank * hp.get("rank_seed_stride", 0)) for p in todo])
        z = self.pipe([p.text for p in todo], height=hp.height, width=hp.width, num_frames=hp.num_frames,
                      num_inference_steps=hp.num_steps, guidance_scale=hp.guidance_large,
                      guidance_scale_2=hp.guidance_large_2, guidance_scale_small=hp.guidance_small, latents=z,
                      output_type="latent", bridge=self.bridge_config).frames
        videos = self.pipe.decode_latents(z)
        reference, written = hp.get("video", "nexus") == "reference", []
        for p, video in zip(todo, videos):
            path = self.video_path(p.id)
            write_mp4(path, to_frames(video, truncate=reference), hp.fps,   # atomic: never a half-written mp4
                      **({"crf": REFERENCE_CRF} if reference else {}))
            written.append(str(path))
        return written

    def on_predict_start(self) -> None:
        Path(self.hparams.out_dir).mkdir(parents=True, exist_ok=True)


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
