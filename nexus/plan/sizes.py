"""Parameter counts of the networks a run loads, from their configs alone: each model is built on the meta device
(no memory, no weights) by its own library class, so the count is the one its checkpoint has. A folder's config
is read when the folder exists; otherwise the architecture named by `plan.*` (a preset below) stands in, so a
plan can be made on a laptop without the weights."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from nexus.models.loading import read_config
from nexus.models.presets import PRESETS
from nexus.pipelines.parts import experts        # the large generator's experts, as the pipeline loads them

# Published configs of the frozen networks (the checkpoints' config.json): Wan's UMT5-XXL encoder and Qwen2.5-VL-7B
UMT5_XXL = dict(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=256384,
                feed_forward_proj="gated-gelu", relative_attention_num_buckets=32)
QWEN25_VL_7B = dict(text_config=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                     num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                                     tie_word_embeddings=False),
                    vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                                       out_hidden_size=3584, patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
                    tie_word_embeddings=False, model_type="qwen2_5_vl")
# the release's understanding model: VILA's language model, Llama-3-8B (ar_model/checkpoint/llm/; only it runs for T2V)
VILA_LLAMA3_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False, model_type="llama")
VLM_PRESETS = {"qwen2.5-vl-7b": QWEN25_VL_7B, "vila-llama3-8b": VILA_LLAMA3_8B}
# Wan2.2-T2V-A14B: two experts of Wan2.1-T2V-14B's architecture (high noise `transformer`, low noise `transformer_2`)
LARGE_PRESETS = {"wan2.1-t2v-14b": (PRESETS["wan2.1-t2v-14b"],),
                 "wan2.2-t2v-a14b": (PRESETS["wan2.1-t2v-14b"], PRESETS["wan2.1-t2v-14b"])}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def wan_config(folder: str | None, preset: str, part: str = "transformer") -> tuple[dict, str]:
    """(transformer config, where it came from). An original-layout folder (nexus.convert.wan): from its config.json
    and safetensors headers."""
    from nexus.convert import wan as original
    if part == "transformer" and original.is_original_wan(folder):
        return original.transformer_config(folder), str(folder)
    cfg = Path(folder or "") / part / "config.json"
    if folder and cfg.is_file():
        return read_config(cfg), str(cfg.parent)
    if preset not in PRESETS:
        raise ValueError(f"plan: unknown generator architecture {preset!r}; choose one of {sorted(PRESETS)} or set "
                         f"the weights folder")
    return PRESETS[preset], f"preset {preset}"


def large_configs(folder: str | None, preset: str) -> tuple[list[dict], str]:
    """The large generator's expert configs (one, or two for Wan2.2-A14B)."""
    from nexus.convert import wan as original
    if original.is_original_wan(folder):
        return [original.transformer_config(folder)], str(folder)
    if folder and (Path(folder) / "transformer" / "config.json").is_file():
        return [read_config(Path(folder) / p / "config.json") for p in experts(folder)], str(folder)
    if preset not in LARGE_PRESETS:
        raise ValueError(f"plan.large={preset!r}: choose one of {sorted(LARGE_PRESETS)} or set paths.large")
    return list(LARGE_PRESETS[preset]), f"preset {preset}"


def _strip(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def wan_params(cfg: dict) -> tuple[int, int]:
    """(parameters, parameters of its largest block) of a Wan transformer config."""
    from diffusers import WanTransformer3DModel
    with torch.device("meta"):
        model = WanTransformer3DModel.from_config(_strip(cfg))
    return count(model), max(count(b) for b in model.blocks)


def part_config(wan_folder: str | None, part: str) -> str:
    """The config.json text of a Wan folder's part (text_encoder, vae), "" without the folder (the presets); of an
    original-layout folder, the config its .pth's shapes make (memory-mapped, no tensor read)."""
    from nexus.convert import wan as original
    if original.is_original_wan(wan_folder):
        return json.dumps(_original_part(wan_folder, part))
    cfg = Path(wan_folder or "") / part / "config.json"
    return json.dumps(_strip(read_config(cfg))) if wan_folder and cfg.is_file() else ""


def _original_part(wan_folder: str, part: str) -> dict:
    from nexus.convert import wan as original
    return {"vae": original.vae_folder_config, "text_encoder": original.umt5_folder_config}[part](wan_folder)


def umt5_params(wan_folder: str | None) -> tuple[int, str]:
    from transformers import UMT5Config, UMT5EncoderModel
    from nexus.convert import wan as original
    if original.is_original_wan(wan_folder):
        with torch.device("meta"):
            return count(UMT5EncoderModel(UMT5Config(**_original_part(wan_folder, "text_encoder")))), str(wan_folder)
    cfg = Path(wan_folder or "") / "text_encoder" / "config.json"
    config = UMT5Config(**_strip(read_config(cfg))) if wan_folder and cfg.is_file() else UMT5Config(**UMT5_XXL)
    with torch.device("meta"):
        return count(UMT5EncoderModel(config)), str(cfg.parent) if wan_folder and cfg.is_file() else "preset umt5-xxl"


def vae_params(wan_folder: str | None) -> tuple[int, str]:
    from diffusers import AutoencoderKLWan
    from nexus.convert import wan as original
    cfg = Path(wan_folder or "") / "vae" / "config.json"
    with torch.device("meta"):
        if original.is_original_wan(wan_folder):
            return count(AutoencoderKLWan(**_original_part(wan_folder, "vae"))), str(wan_folder)
        if wan_folder and cfg.is_file():
            return count(AutoencoderKLWan.from_config(_strip(read_config(cfg)))), str(cfg.parent)
        return count(AutoencoderKLWan()), "preset wan2.1-vae"     # diffusers' defaults are Wan2.1's VAE


def vlm_config(vlm_folder: str | None, preset: str):
    from transformers import AutoConfig
    if vlm_folder and (Path(vlm_folder) / "config.json").is_file():
        return AutoConfig.from_pretrained(vlm_folder), str(vlm_folder)
    if preset not in VLM_PRESETS:
        raise ValueError(f"plan.vlm={preset!r}: choose one of {sorted(VLM_PRESETS)} or set paths.vlm")
    cfg = dict(VLM_PRESETS[preset])
    return AutoConfig.for_model(cfg.pop("model_type"), **cfg), f"preset {preset}"


def vlm_params(vlm_folder: str | None, preset: str) -> tuple[int, int, str]:
    """(parameters, hidden size, source) of the understanding model (transformers' image-text-to-text class, or the
    causal-LM class for a language model alone such as the release's VILA LLM)."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
    config, source = vlm_config(vlm_folder, preset)
    auto = AutoModelForImageTextToText if hasattr(config, "text_config") else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto.from_config(config)
    hidden = getattr(config, "text_config", config).hidden_size
    return count(model), hidden, source
