"""What each Hydra tool reads and writes, checked right after its config is composed and before anything heavy
imports. (nexus.checks)"""
from __future__ import annotations

import os
from pathlib import Path

from nexus.checks.files import named
from nexus.checks.outputs import _folder_problem, device, output_folder
from nexus.checks.weights import WEIGHT_KINDS, checkpoint_problem, lightning_checkpoint, weights_file, weights_folder
from nexus.errors import UserError


def _get(cfg, key: str, default=None):
    from omegaconf import OmegaConf
    return OmegaConf.select(cfg, key, default=default)


def _is_under(path, root) -> bool:
    try:
        return Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(root)))
    except (TypeError, ValueError):
        return False


def run_folder(folder_key: str, folder, root_key: str | None = None, root=None) -> Path:
    """A run's output folder; when it lies under `root` (run.root) a problem there is said of root_key."""
    if root_key and root is not None and _is_under(folder, root):
        output_folder(root_key, root)
    return output_folder(folder_key, folder)


def tiny_models_folder(cfg, key: str = "paths.tiny_models") -> None:
    """paths.tiny_models: built there when missing (an existing folder is only read)."""
    path = _get(cfg, key)
    if path and not Path(str(path)).is_dir():
        output_folder(key, path)


NETWORK_FOLDERS = {"clip": "a CLIPModel folder (transformers layout, with config.json)",
                   "clip_large": "a CLIPModel folder (transformers layout, with config.json)",
                   "dino": "a ViTModel (DINO) folder (transformers layout, with config.json)"}


def metric_networks(cfg, prefix: str = "metrics") -> None:
    """metrics.networks.<name>: a model folder (CLIP, DINO) or the aesthetic head's weights file; metrics.device."""
    networks = _get(cfg, f"{prefix}.networks") or {}
    for name in list(networks.keys()):
        path = networks.get(name)
        if not path:
            continue
        key = f"{prefix}.networks.{name}"
        if name in NETWORK_FOLDERS:
            weights_folder(key, path, f"give {NETWORK_FOLDERS[name]}, or null to report its dimensions unavailable")
        elif name == "aesthetic_head":
            weights_file(key, path, WEIGHT_KINDS, "give the LAION linear head (.pth or .safetensors), e.g. "
                                                  "sa_0_4_vit_l_14_linear.pth, or null")
    if _get(cfg, f"{prefix}.device") is not None:
        device(f"{prefix}.device", _get(cfg, f"{prefix}.device"))


def prompts_input(key: str, prompt=None, prompt_file=None, **kw):
    """The prompts of prompt=/prompt_file= (or manifest=), read and checked now (a light module)."""
    from nexus.inference.prompts import load_prompts
    return load_prompts(prompt, prompt_file, key=key, **kw)


def export_or_checkpoint(key: str, path) -> None:
    """small.export: an export folder (connector/, ...) or a stage-1 checkpoint."""
    if not path or (Path(str(path)) / "connector").is_dir():
        return
    problem = checkpoint_problem(path)
    if problem:      # FileNotFoundError, as nexus.inference.launch has always said it (a user's error: one line)
        raise FileNotFoundError(f"{named(key, path)}: {problem}, and not an export folder (connector/, transformer/ "
                                f"...): pass tools/export.py's output or a stage-1 checkpoint such as "
                                f"runs/<recipe>/<run>/checkpoints/last.ckpt")


def fit_inputs_outputs(cfg) -> None:
    """tools/fit.py: run.dir (under run.root), paths.tiny_models, run.resume=<checkpoint>, eval.prompt_file."""
    run_folder("run.dir", _get(cfg, "run.dir"), "run.root", _get(cfg, "run.root"))
    tiny_models_folder(cfg)
    resume = _get(cfg, "run.resume")
    if resume not in (None, "auto", "never"):
        lightning_checkpoint("run.resume", resume, "use auto, never or the path of a checkpoint Lightning wrote "
                                                   "(runs/<recipe>/<run>/checkpoints/last.ckpt)")
    if _get(cfg, "model.null_features"):
        weights_file("model.null_features", _get(cfg, "model.null_features"), ("safetensors",),
                     "give the null.safetensors that tools/precompute.py wrote beside the feature shards")
    if _get(cfg, "eval.enabled"):
        if _get(cfg, "eval.prompt_file"):
            prompts_input("eval.prompt_file", None, _get(cfg, "eval.prompt_file"))
        metric_networks(cfg, "eval.metrics")


def sample_inputs_outputs(cfg) -> None:
    """tools/sample.py: the prompts, small.export, out_dir (under run.root), paths.tiny_models."""
    prompts_input("prompt_file", _get(cfg, "prompt"), _get(cfg, "prompt_file"))
    if _get(cfg, "bridge.strategy") != "large_only":
        export_or_checkpoint("small.export", _get(cfg, "small.export"))
    run_folder("out_dir", _get(cfg, "out_dir"), "run.root", _get(cfg, "run.root"))
    tiny_models_folder(cfg)


def evaluate_inputs_outputs(cfg) -> None:
    """tools/evaluate.py: manifest=, the metric networks and device, out= (scores, evaluate.log), tiny models."""
    if _get(cfg, "manifest"):
        prompts_input("manifest", None, _get(cfg, "manifest"))
    metric_networks(cfg)
    if Path(str(_get(cfg, "videos"))).is_dir():      # else evaluate says videos= does not exist
        output_folder("out", _get(cfg, "out"))
    tiny_models_folder(cfg)


def watch_inputs_outputs(cfg) -> None:
    """tools/watch_eval.py: run_dir (its checkpoints/ read, eval_watch/ written), the prompts, metrics, tiny models."""
    run_dir = Path(str(_get(cfg, "run_dir")))
    if not (run_dir / "checkpoints").is_dir():
        raise UserError(f"run_dir={run_dir}: no checkpoints/ folder; point it at a stage-1 run directory "
                        f"(runs/<recipe>/<run name>)")
    if _get(cfg, "prompt_file"):
        prompts_input("prompt_file", None, _get(cfg, "prompt_file"))
    metric_networks(cfg)
    problem = _folder_problem(run_dir / "eval_watch")
    if problem:
        raise UserError(f"run_dir={run_dir}: {problem} (the watcher writes eval_watch/ there); choose another run_dir")
    tiny_models_folder(cfg)
