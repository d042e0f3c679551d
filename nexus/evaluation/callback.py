"""Periodic sample evaluation during stage 1: every N steps (and at the end) sample a fixed prompt set with the
current small generator (strategy small_only) or with UPFB and the frozen large generator (strategy upfb),
score the videos with the VBench-style suite, log scores, a per-prompt table and the videos, free what it used.

Every rank takes part: rank r samples prompts r, r + W, ...; ranks with fewer prompts sample padding copies
that are thrown away, so under ZeRO-3 (where every forward gathers sharded weights from all ranks) no rank
waits on another. Scores sync through torchmetrics; videos land in <run dir>/eval/step_<N>/.
"""
from __future__ import annotations

import gc
import math
import shutil
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist

from nexus.data.video import decode_mp4
from nexus.evaluation.run import logged_values, score_videos, suite_from_config, write_report
from nexus.inference.module import BridgeModule, check_settings
from nexus.pipelines import LumosNexusPipeline
from nexus.pipelines.parts import boundary_ratio, load_large
from nexus.upfb.solver import make_scheduler
from nexus.inference.prompts import Prompt, load_prompts
from nexus.models.encoders import FrozenEncoders
from nexus.models.speed import speed_up
from nexus.models.conditioning import WAN_TEXT_LEN
from nexus.models.loading import DTYPES
from nexus.training.flops import precision_dtype


def _gather(rows: list) -> list:
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, rows)
    return [r for part in parts for r in part]


def eval_prompts(prompts: list[str] | None, prompt_file: str | None, key: str = "eval.prompt_file") -> list[Prompt]:
    if prompt_file:
        return load_prompts(prompt_file=prompt_file, key=key)
    if not prompts:
        raise ValueError("eval: give eval.prompts=[...] or eval.prompt_file=<file> (or set eval.every_n_steps=0)")
    return [Prompt(f"{i:03d}", t) for i, t in enumerate(prompts)]


class PeriodicEval(L.Callback):
    def __init__(self, out_dir: str, prompts: list[Prompt], every_n_steps: int = 0, at_end: bool = True,
                 strategy: str = "small_only", large_path: str | None = None, sampling: dict | None = None,
                 bridge: dict | None = None, metrics: dict | None = None, tiny_root: str | None = None,
                 log_videos: int = 4):
        if strategy not in ("small_only", "upfb"):
            raise ValueError(f"eval.strategy={strategy!r}: choose small_only or upfb")
        from nexus.convert.wan import is_original_wan
        if strategy == "upfb" and not (large_path and ((Path(large_path) / "transformer" / "config.json").is_file()
                                                       or is_original_wan(large_path))):
            raise FileNotFoundError(f"eval.strategy=upfb needs eval.large=<large Wan folder>; got {large_path!r}")
        s = dict(sampling or {})
        try:        # the same checks as tools/sample.py, named by their eval.* keys, before training starts
            check_settings(s.get("num_frames", 81), s.get("height", 480), s.get("width", 832), s.get("num_steps", 50),
                           s.get("scheduler", "unipc"), "fp32", {**(bridge or {}), "strategy": strategy})
        except ValueError as e:
            raise ValueError(f"eval.{e}") from None
        self.out_dir, self.prompts, self.every, self.at_end = Path(out_dir), prompts, every_n_steps, at_end
        self.strategy, self.large_path, self.sampling = strategy, large_path, dict(sampling or {})
        self.bridge, self.metrics, self.tiny_root = dict(bridge or {}), dict(metrics or {}), tiny_root
        self.log_videos = log_videos
        self._last = -1
        self._encoders: FrozenEncoders | None = None      # only when training reads precomputed features

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every and step % self.every == 0 and step != self._last:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.at_end and trainer.global_step != self._last:
            self.evaluate(trainer, pl_module)

    # ---- one evaluation -------------------------------------------------------------------------------------
    def _bridge(self, pl_module, out: Path) -> tuple[BridgeModule, FrozenEncoders]:
        hp = pl_module.hparams
        dtype = pl_module.transformer.dtype
        name = {v: k for k, v in DTYPES.items()}[dtype]
        bm = BridgeModule(hp.wan_path, self.large_path or hp.wan_path, str(out), vlm_path=hp.vlm_path,
                          bridge={**self.bridge, "strategy": self.strategy}, dtype=name,
                          context_len=hp.context_len, instruction=hp.instruction, progress=False,
                          **{"text_len": hp.get("text_len", WAN_TEXT_LEN), **self.sampling})
        enc = pl_module.encoders
        if enc is None:           # features-mode training: the encoders are loaded here, kept on the CPU
            if self._encoders is None:
                vlm = hp.vlm_path if pl_module.connector is not None else None
                self._encoders = FrozenEncoders.load(hp.wan_path, vlm, DTYPES[hp.encoder_dtype],
                                                     hp.instruction, "cpu",
                                                     prompt_recipe=hp.get("prompt_recipe", "chat_template"))
            enc = self._encoders
        large = large_2 = None
        if self.strategy == "upfb":
            if pl_module.device.type == "cuda":
                torch.cuda.empty_cache()       # the training step's cached blocks, before the large generator comes
            # in the dtype the training step computes in (bf16 under bf16-mixed), not in the fp32 of the trained
            # master weights: 4x the memory, and far slower on tensor cores
            large_dtype = precision_dtype(pl_module.trainer.precision) or dtype
            large, large_2 = load_large(self.large_path, large_dtype)    # on the CPU: placed when used
            for m in (large, large_2):
                if m is not None:          # the training run's attention backend (not its compilation: one use)
                    speed_up(m, hp.get("attention"))
        # the pipeline over the training run's own models, which stay where training keeps them; the encoders stay
        # on the device for the whole evaluation, not moved per prompt
        bm.pipe = LumosNexusPipeline(
            vae=enc.vae, tokenizer=enc.umt5_tokenizer, text_encoder=enc.umt5,
            scheduler=make_scheduler(bm.hparams.scheduler, bm.hparams.shift), transformer=large, transformer_2=large_2,
            transformer_small=pl_module.transformer, connector=pl_module.connector, vlm=enc.vlm,
            vlm_tokenizer=enc.vlm_tokenizer, boundary_ratio=boundary_ratio(self.large_path) if large_2 is not None
            else None, text_len=bm.hparams.text_len, context_len=hp.context_len, prompt_recipe=enc.prompt_recipe,
            instruction=hp.instruction)
        bm.pipe.null = pl_module._null  # the run's own null conditions (the empty prompt's, or model.init_from's file)
        bm.pipe.set_progress_bar_config(disable=True)
        bm.pinned = (pl_module.transformer, pl_module.connector, enc.vae, enc.umt5, enc.vlm)
        enc.to(pl_module.device)
        bm._device = pl_module.device      # LightningModule.device: its parts already sit on the training device
        return bm, enc

    @torch.no_grad()
    def evaluate(self, trainer, pl_module) -> dict:
        self._last = step = trainer.global_step
        out = self.out_dir / f"step_{step:08d}"
        rank, world = trainer.global_rank, trainer.world_size
        if rank == 0 and out.exists():
            shutil.rmtree(out)            # a re-run of this step after a crash starts clean
        trainer.strategy.barrier()
        mine = self.prompts[rank::world]
        per_rank = math.ceil(len(self.prompts) / world)
        pads = [Prompt(f".pad-{rank}-{j}", self.prompts[0].text) for j in range(per_rank - len(mine))]
        bm, enc = self._bridge(pl_module, out)
        parts = [m for m in (pl_module.transformer, pl_module.connector) if m is not None]
        modes = [m.training for m in parts]
        for m in parts:
            m.eval()
        try:
            for p in mine + pads:         # one prompt per call: the same forwards on every rank
                bm.predict_step([p])
        finally:
            for m, mode in zip(parts, modes):
                m.train(mode)
            if pl_module.encoders is None:
                enc.to("cpu")            # loaded for evaluation only (features-mode training)
            del bm
        for p in pads:
            (out / f"{p.id}.mp4").unlink(missing_ok=True)
        result = self._score(trainer, pl_module, out, mine)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if rank == 0:
            write_report(result, out, title=f"VBench-style scores at step {step}")
            self._log(trainer, result, out, step)
        trainer.strategy.barrier()
        return result

    def _score(self, trainer, pl_module, out: Path, mine: list[Prompt]) -> dict:
        suite = suite_from_config({**self.metrics, "device": str(pl_module.device),
                                   "num_frames": self.sampling.get("num_frames")}, self.tiny_root)
        items = ((p.id, torch.from_numpy(decode_mp4(str(out / f"{p.id}.mp4"))), p.text) for p in mine)
        result = score_videos(suite, items, gather=_gather if trainer.world_size > 1 else None)
        return result | {"strategy": self.strategy}

    def _log(self, trainer, result: dict, out: Path, step: int) -> None:
        values = logged_values(result)
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
            if type(logger).__name__ == "WandbLogger":
                cols = ["id", "prompt", *result["scores"]]
                logger.log_table("eval/prompts", columns=cols, data=[[r[c] for c in cols] for r in result["rows"]],
                                 step=step)
                shown = result["rows"][:self.log_videos]
                if shown:
                    logger.log_video("eval/videos", videos=[str(out / f"{r['id']}.mp4") for r in shown],
                                     step=step, caption=[r["prompt"] for r in shown], format=["mp4"] * len(shown))


def eval_callbacks(cfg, run_dir: Path) -> list[PeriodicEval]:
    """The `eval:` block of a fit config -> [PeriodicEval] (or [] when eval.enabled is false). Checked before
    any model loads: a bad prompt file or a missing large generator stops the run at once."""
    from omegaconf import OmegaConf
    e = cfg.get("eval")
    if e is None or not e.enabled:
        return []
    c = OmegaConf.to_container(e, resolve=True)
    return [PeriodicEval(str(run_dir / "eval"), eval_prompts(c.get("prompts"), c.get("prompt_file")),
                         c["every_n_steps"], c["at_end"], c["strategy"], c.get("large"), c["sampling"],
                         c.get("bridge"), c["metrics"], cfg.paths.get("tiny_models"), c.get("log_videos", 4))]
