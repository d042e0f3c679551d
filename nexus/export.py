"""Stage-1 checkpoint (plain Lightning file or ZeRO-sharded DeepSpeed folder) -> the trainable weights as
safetensors, in the layout the inference side loads:

  out/connector/{config.json, model.safetensors}            nexus.models.connector.OmniConnector
  out/transformer/{config.json, diffusion_pytorch_model.safetensors}   (generator_train=full; diffusers layout)
  out/transformer_lora/pytorch_lora_weights.safetensors (generator_train=lora; WanPipeline's LoRA
                                                             format, the LoRA config in its metadata)
  out/nexus.json                                             what was exported, from which checkpoint and step

A generator trained on its own (model.conditioning=umt5) exports as a whole Wan folder instead: its transformer/
(or the source's transformer/ plus transformer_lora/), and every other part (vae/, text_encoder/, tokenizer/,
scheduler/, model_index.json) copied from the folder it was trained from, so paths.small / paths.large / paths.wan
can point at it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from nexus.models.connector import ConnectorConfig
from nexus.models.loading import DTYPES



def read_checkpoint(path: str | Path) -> dict:
    """-> the Lightning checkpoint dict with a consolidated fp32 `state_dict`, from either checkpoint form."""
    from nexus.slurm.resume import checkpoint_problem
    path = Path(path)
    problem = checkpoint_problem(path)
    if problem and path.exists():
        raise ValueError(f"{path}: {problem}; pass e.g. runs/<recipe>/<run>/checkpoints/last.ckpt")
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=False)
    if path.is_dir() and (path / "latest").is_file():   # DeepSpeed: gather the ZeRO partitions on CPU
        from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict
        with tempfile.TemporaryDirectory() as tmp:
            convert_zero_checkpoint_to_fp32_state_dict(path, Path(tmp) / "fp32.ckpt")
            return torch.load(Path(tmp) / "fp32.ckpt", map_location="cpu", weights_only=False)
    raise FileNotFoundError(f"{path} is neither a checkpoint file nor a DeepSpeed checkpoint folder (one holding "
                            f"a 'latest' file): pass e.g. runs/<recipe>/<run>/checkpoints/last.ckpt")


def _subset(state: dict, prefix: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v.to(dtype).contiguous() for k, v in state.items() if k.startswith(prefix)}


def export_checkpoint(ckpt: str | Path, out: str | Path, dtype: str = "bf16", overwrite: bool = False,
                      large: str | None = None) -> Path:
    """A stage-1 checkpoint -> an export folder; a connector export is also a LumosNexusPipeline folder
    (model_index.json naming the run's Wan and VLM folders and, when given, the `large` generator)."""
    out = Path(out)
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: choose one of {sorted(DTYPES)}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: pass overwrite=true (--overwrite) or choose another folder")
    state = read_checkpoint(ckpt)
    meta = state.get("nexus")
    if meta is None:
        raise ValueError(f"{ckpt} was not written by nexus' AlignmentModule (no 'nexus' entry)")
    sd, dt = state["state_dict"], DTYPES[dtype]
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent if out.parent.exists() else None))
    try:
        if meta.get("conditioning", "connector") == "umt5":
            _copy_wan_parts(Path(meta["wan_path"]), tmp, keep_transformer=meta["generator_train"] != "full")
        else:
            (tmp / "connector").mkdir()
            (tmp / "connector" / "config.json").write_text(json.dumps(meta["connector_config"], indent=2))
            save_file(_subset(sd, "connector.", dt), str(tmp / "connector" / "model.safetensors"))
        if meta["generator_train"] == "full":
            _save_transformer(meta["transformer_config"], _subset(sd, "transformer.", dt), tmp / "transformer")
        elif meta["generator_train"] == "lora":
            _save_lora(meta, _subset(sd, "transformer.", dt), tmp / "transformer_lora")
        info = {"checkpoint": str(Path(ckpt).resolve()), "global_step": state.get("global_step"),
                "generator_train": meta["generator_train"], "dtype": dtype,
                "conditioning": meta.get("conditioning", "connector"), "wan_path": meta.get("wan_path"),
                **{k: meta[k] for k in ("text_len", "context_len", "prompt_recipe") if k in meta}}
        null = _init_null(meta.get("init_from"))
        if null is not None:     # trained with the null conditions of the export it started from: they go along
            shutil.copy2(null, tmp / "null.safetensors")
            info["null"] = "null.safetensors"
        init = _init_info(meta.get("init_from"))
        info.update({k: v for k, v in init.items() if k not in info and k in
                     ("wan_path", "vlm_path", "vlm_dtype", "markers", "connector", "model_pt_wrapped", "adapter_meta")})
        if init and (Path(meta["init_from"]) / "extras").is_dir():   # the release's parts T2V does not train
            shutil.copytree(Path(meta["init_from"]) / "extras", tmp / "extras")
        if init:
            info["init_from"] = str(Path(meta["init_from"]).resolve())
        hp = state.get("hyper_parameters") or {}
        for key in ("vlm_path", "instruction"):         # what the pipeline needs to encode prompts as the run did
            if hp.get(key) and key not in info and info["conditioning"] == "connector":
                info[key] = str(hp[key])
        (tmp / "nexus.json").write_text(json.dumps(info, indent=2))
        if info["conditioning"] == "connector":
            from nexus.pipelines.folder import export_index
            export_index(tmp, info, str(Path(large).resolve()) if large else None)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)     # the export appears whole or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _init_info(init_from: str | None) -> dict:
    if not init_from or not (Path(init_from) / "nexus.json").is_file():
        return {}
    return json.loads((Path(init_from) / "nexus.json").read_text())


def _init_null(init_from: str | None) -> Path | None:
    name = _init_info(init_from).get("null")
    if not name:
        return None
    if not (Path(init_from) / name).is_file():
        raise FileNotFoundError(f"the run started from {init_from}, whose null conditions {name} are gone: the export "
                                f"needs them (the generator was trained with them)")
    return Path(init_from) / name


def as_export(path: str | Path, cache_root: str | Path) -> Path:
    """An export folder for `path`: the folder itself, or, for a stage-1 checkpoint (file or DeepSpeed folder),
    its export under cache_root/<checkpoint name>-<fingerprint>, made once (several ranks may race: first one
    wins); exports of older contents of the same checkpoint (last.ckpt before more training) are removed."""
    from nexus.provenance import fingerprint
    path = Path(path)
    if (path / "connector").is_dir():
        return path
    from nexus.slurm.resume import checkpoint_problem
    if checkpoint_problem(path):
        raise FileNotFoundError(f"{path}: {checkpoint_problem(path)}, and not an export folder (connector/, "
                                f"transformer/ ...): pass tools/export.py's output or a stage-1 checkpoint")
    out = Path(cache_root) / f"{path.name}-{fingerprint(path)}"
    if not out.is_dir():
        for stale in Path(cache_root).glob(f"{path.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            export_checkpoint(path, out, dtype="fp32")
        except OSError:
            if not (out / "connector").is_dir():
                raise
    return out


def _copy_wan_parts(source: Path, out: Path, keep_transformer: bool) -> None:
    """The parts of the Wan folder a generator was trained from that training did not change."""
    if not (source / "vae").is_dir():
        raise FileNotFoundError(f"the checkpoint was trained from the Wan folder {source}, which is gone (no vae/): "
                                f"a plain generator export copies its VAE, UMT5 and tokenizer from there")
    for part in source.iterdir():
        if part.name.startswith(".") or (part.name.startswith("transformer") and not keep_transformer):
            continue
        (shutil.copytree if part.is_dir() else shutil.copy2)(part, out / part.name)


def _meta_transformer(config: dict):
    from diffusers import WanTransformer3DModel
    with torch.device("meta"):
        return WanTransformer3DModel.from_config(config)


def _save_transformer(config: dict, sd: dict, folder: Path) -> None:
    model = _meta_transformer(config)
    model.load_state_dict(sd, assign=True, strict=True)
    model.save_pretrained(folder, safe_serialization=True)


def _save_lora(meta: dict, sd: dict, folder: Path) -> None:
    from peft import LoraConfig
    model = _meta_transformer(meta["transformer_config"])
    cfg = dict(r=16, lora_alpha=16, target_modules=["to_q", "to_k", "to_v", "to_out.0"]) | (meta["lora"] or {})
    model.add_adapter(LoraConfig(**cfg))
    model.load_state_dict(sd, assign=True, strict=True)
    # the Wan pipeline's LoRA format ("transformer." keys, config in the metadata): WanPipeline.load_lora_weights
    # or transformer.load_lora_adapter(folder, prefix="transformer", use_safetensors=True) read it
    from diffusers import WanPipeline
    from peft.utils import get_peft_model_state_dict
    WanPipeline.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(model),
                                  transformer_lora_adapter_metadata=model.peft_config["default"].to_dict())


def load_connector(folder: str | Path, device="cpu", dtype: torch.dtype = torch.float32):
    """The inference side's loader for out/connector."""
    from nexus.models.connector import OmniConnector
    folder = Path(folder)
    model = OmniConnector(ConnectorConfig(**json.loads((folder / "config.json").read_text())))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.to(device=device, dtype=dtype).eval()
