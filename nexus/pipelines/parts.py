"""Where a LumosNexusPipeline's components come from: four source folders, each in a layout nexus already reads.

  wan    the small Wan folder (diffusers or Wan-AI's original layout): the shared VAE, the UMT5 tokenizer and encoder,
         and the stock small generator when there is no stage-1 export
  small  a stage-1 export (tools/export.py, tools/convert.py omnivideo): connector/, transformer/ or
         transformer_lora/, null.safetensors, nexus.json
  large  the frozen large generator (Wan2.1-T2V-14B in either layout; Wan2.2-T2V-A14B with transformer_2/ and
         model_index.json's boundary_ratio)
  vlm    the understanding model (a transformers VLM or causal-LM folder)

A pipeline folder's model_index.json names them in `_nexus_sources` (a path relative to the folder, or absolute), so
a 14B generator is referenced, not copied.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from nexus.models.loading import (DTYPES, check_folder, load_transformer, load_umt5, load_vae, load_vlm, read_config,
                                  vlm_hidden_size)

SOURCES = ("wan", "small", "large", "vlm")


def export_info(export: Path | None) -> dict:
    """An export's nexus.json ({} when there is none)."""
    return read_config(export / "nexus.json") if export is not None and (export / "nexus.json").is_file() else {}


def null_features(export: Path | None, info: dict) -> dict | None:
    """The export's null conditions {'umt5': (T, D), 'vlm': (L, d_vlm)} when nexus.json names a file, else None."""
    if not info.get("null"):
        return None
    from nexus.models.encoders import load_null_features
    return load_null_features(export / info["null"])


def check_export(export: Path, vlm_path: str | None) -> None:
    """A stage-1 export must hold a connector whose config fits the VLM it will read."""
    cfg = export / "connector" / "config.json"
    if not vlm_path:
        raise ValueError(f"small.export={export} has a connector, which reads the VLM: set paths.vlm")
    want, have = read_config(cfg)["vlm_dim"], vlm_hidden_size(vlm_path)
    if want != have:
        raise ValueError(f"the export's connector reads a VLM of hidden size {want} but paths.vlm={vlm_path} has "
                         f"{have}: use the VLM the connector was trained with")


def experts(large: str | Path) -> list[str]:
    """The subfolders of a diffusers-layout large generator that hold its experts: `transformer`, and Wan2.2-A14B's
    low-noise `transformer_2` when there is one (what the pipeline loads and the memory plan counts)."""
    return ["transformer"] + (["transformer_2"] if (Path(large) / "transformer_2" / "config.json").is_file() else [])


def load_large(path: str | Path, dtype: torch.dtype):
    """The frozen large generator: (transformer, Wan2.2-A14B's low-noise expert `transformer_2` or None)."""
    from diffusers import WanTransformer3DModel
    from nexus.convert import wan as original
    large = Path(path)
    if original.is_original_wan(large):     # Wan-AI's own layout (Wan2.1-T2V-14B): one expert
        return original.load_original_transformer(large, dtype).requires_grad_(False), None
    first, *second = [WanTransformer3DModel.from_pretrained(large / e, torch_dtype=dtype).eval().requires_grad_(False)
                      for e in experts(large)]
    return first, (second[0] if second else None)


def boundary_ratio(large: str | Path | None) -> float | None:
    """Wan2.2-A14B's hand-over between its experts (model_index.json), None for one expert."""
    index = Path(large) / "model_index.json" if large else None
    if index is None or not index.is_file() or not (Path(large) / "transformer_2").is_dir():
        return None
    return read_config(index).get("boundary_ratio")


def load_connector(folder: str | Path, device="cpu", dtype: torch.dtype = torch.float32):
    """A stage-1 export's connector/ (config.json + model.safetensors)."""
    from safetensors.torch import load_file
    from nexus.models.connector import ConnectorConfig, OmniConnector
    folder = Path(folder)
    model = OmniConnector(ConnectorConfig(**json.loads((folder / "config.json").read_text())))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.to(device=device, dtype=dtype).eval()


def load_small(wan: str, export: Path | None, dtype: torch.dtype):
    """The small generator: the export's transformer/ (full fine-tune), else the stock one of `wan` (either layout),
    with the export's LoRA when it has one."""
    from diffusers import WanTransformer3DModel
    full = export / "transformer" if export is not None and (export / "transformer").is_dir() else None
    model = (WanTransformer3DModel.from_pretrained(full, torch_dtype=dtype) if full is not None
             else load_transformer(wan, dtype)).eval()
    if export is not None and (export / "transformer_lora").is_dir():
        model.load_lora_adapter(export / "transformer_lora", prefix="transformer", use_safetensors=True)
    return model.requires_grad_(False)


def load_parts(wan: str, small: str | None = None, large: str | None = None, vlm: str | None = None,
               dtype: torch.dtype = torch.bfloat16, need: tuple[bool, bool] = (True, True),
               vlm_dtype: torch.dtype | None = None) -> dict:
    """The components a LumosNexusPipeline is built from, loaded on the CPU. need = (small, large): which generators
    to load (a strategy's BridgeConfig.needs); the export's connector and the VLM come with the small one."""
    from nexus.models.loading import WAN_LAYOUT
    check_folder("wan", wan, WAN_LAYOUT)
    export = Path(small) if small else None
    if export is not None and need[0] and (export / "connector").is_dir():
        check_export(export, vlm)
    parts = dict(transformer=None, transformer_2=None, transformer_small=None, connector=None, vlm=None,
                 vlm_tokenizer=None)
    if need[1]:
        if not large:
            raise ValueError("the large generator is needed (strategy other than small_only) but no folder was given: "
                             "pass large=<Wan2.1-T2V-14B or Wan2.2-T2V-A14B folder>")
        parts["transformer"], parts["transformer_2"] = load_large(large, dtype)
    if need[0]:
        parts["transformer_small"] = load_small(wan, export, dtype)
        if export is not None and (export / "connector").is_dir():
            parts["connector"] = load_connector(export / "connector", dtype=dtype).requires_grad_(False)
            info = export_info(export)
            vd = vlm_dtype or DTYPES.get(info.get("vlm_dtype"), dtype)     # the release's VILA ran in fp16
            parts["vlm_tokenizer"], parts["vlm"] = load_vlm(vlm, vd, "cpu")
    parts["tokenizer"], parts["text_encoder"] = load_umt5(wan, dtype, "cpu")
    parts["vae"] = load_vae(wan, dtype, "cpu")
    return parts


def index_sources(folder: Path) -> dict[str, str | None]:
    """The source folders a pipeline folder names: its model_index.json's `_nexus_sources` (relative to the folder),
    or, for an export folder without one (tools/export.py before pipelines, tools/convert.py), the frozen parts its
    nexus.json names (wan_path, vlm_path, large_path) and the folder itself as `small`."""
    index = folder / "model_index.json"
    if index.is_file():
        record = read_config(index)
        if record.get("_class_name") != "LumosNexusPipeline":
            raise ValueError(f"{index} is a {record.get('_class_name')} folder, not a LumosNexusPipeline one: pass "
                             f"it as large= (a large generator) or wan= (the small Wan) to "
                             f"LumosNexusPipeline.from_pretrained")
        named = record.get("_nexus_sources") or {}
        return {k: str((folder / named[k]).resolve()) if named.get(k) else None for k in SOURCES}
    if (folder / "connector").is_dir():
        info = export_info(folder)
        return {"wan": info.get("wan_path"), "small": str(folder), "large": info.get("large_path"),
                "vlm": info.get("vlm_path")}
    raise FileNotFoundError(f"{folder} holds neither a model_index.json of a LumosNexusPipeline nor a stage-1 export "
                            f"(connector/): pass a folder written by LumosNexusPipeline.save_pretrained or "
                            f"tools/export.py")


def relative_to(path: str | None, folder: Path) -> str | None:
    """How a pipeline folder records a source: relative when it lies inside the folder, else absolute."""
    if not path:
        return None
    p = Path(path).resolve()
    try:
        return str(p.relative_to(folder.resolve())) or "."
    except ValueError:
        return str(p)
