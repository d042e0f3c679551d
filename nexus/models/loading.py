"""Local folders in the diffusers / transformers layouts -> models. Checked before anything heavy loads."""
from __future__ import annotations

import json
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}   # config names -> torch dtypes

# what each folder must hold; the first file of each tuple that exists satisfies it
WAN_LAYOUT = {
    "transformer": ("transformer/config.json",),
    "vae": ("vae/config.json",),
    "text_encoder": ("text_encoder/config.json",),
    "tokenizer": ("tokenizer/tokenizer.json", "tokenizer/spiece.model", "tokenizer/tokenizer_config.json"),
}
VLM_LAYOUT = {
    "config": ("config.json",),
    "tokenizer": ("tokenizer.json", "tokenizer_config.json"),
}


class LayoutError(FileNotFoundError):
    """A weights folder is missing or not laid out as expected."""


def check_folder(key: str, path: str | None, layout: dict[str, tuple[str, ...]], parts: tuple[str, ...] | None = None,
                 env: str | None = None) -> Path:
    """Raise LayoutError naming the config key, the path and the expected layout if `path` does not fit. A Wan
    layout (parts named as WAN_LAYOUT's) is also met by a folder in the original Wan layout (nexus.convert.wan)."""
    from nexus.convert import wan as original
    wan_like = set(layout) <= set(original.LAYOUT)
    expected = ", ".join(" or ".join(f) for f in layout.values())
    if wan_like:
        expected += f" (diffusers layout), or {original.DESCRIPTION} (the original Wan layout)"
    how = f"set {key}=/path/to/folder" + (f" or the environment variable {env}" if env else "")
    if not path:
        raise LayoutError(f"{key} is not set: {how}. The folder must hold {expected}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise LayoutError(f"{key}={path}: no such folder ({how}). It must hold {expected}")
    wanted = [name for name in layout if parts is None or name in parts]
    if wan_like and original.is_original_wan(root):
        missing = original.missing_parts(root, wanted)
        if missing:
            raise LayoutError(f"{key}={path} is not a complete original-layout Wan folder: missing "
                              f"{', '.join(missing)}. It must hold {original.DESCRIPTION}")
        return root
    missing = [" or ".join(layout[name]) for name in wanted if not any((root / f).is_file() for f in layout[name])]
    if missing:
        raise LayoutError(f"{key}={path} is not laid out as expected: missing {', '.join(missing)}. "
                          f"The folder must hold {expected}")
    return root


def read_config(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def generator_config(wan_path: str | Path) -> dict:
    """The transformer config of a Wan folder in either layout (diffusers' transformer/config.json, or the original
    folder's config.json + its weights' shapes), read without loading weights."""
    from nexus.convert import wan as original
    if original.is_original_wan(wan_path):
        return original.transformer_config(wan_path)
    return read_config(Path(wan_path) / "transformer" / "config.json")


def vlm_hidden_size(vlm_path: str | Path) -> int:
    cfg = read_config(Path(vlm_path) / "config.json")
    return int(cfg.get("text_config", cfg).get("hidden_size") or cfg["hidden_size"])


def cast_like_pretrained(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast a freshly built diffusers model as from_pretrained(torch_dtype=dtype) loads it: the modules the class
    keeps in fp32 (Wan: rope, time embedder, scale_shift_table, norms) stay fp32."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    model.to(dtype)
    if dtype in (torch.float16, torch.bfloat16):
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if any(k in name.split(".") for k in keep):
                t.data = t.data.float()
    return model


def load_transformer(wan_path: str | Path, dtype: torch.dtype = torch.float32, random_init: bool = False):
    """random_init: the architecture of transformer/config.json with fresh weights (benchmarks at real size).
    A folder in the original Wan layout loads through nexus.convert.wan."""
    from diffusers import WanTransformer3DModel
    from nexus.convert import wan as original
    if original.is_original_wan(wan_path):
        if random_init:
            return cast_like_pretrained(WanTransformer3DModel.from_config(original.transformer_config(wan_path)), dtype)
        return original.load_original_transformer(wan_path, dtype)
    if random_init:
        config = read_config(Path(wan_path) / "transformer" / "config.json")
        return cast_like_pretrained(WanTransformer3DModel.from_config(config), dtype)
    return WanTransformer3DModel.from_pretrained(Path(wan_path) / "transformer", torch_dtype=dtype)


def load_vae(wan_path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    from diffusers import AutoencoderKLWan
    from nexus.convert import wan as original
    if original.is_original_wan(wan_path):       # Wan2.1_VAE.pth
        vae = original.load_original_vae(wan_path, dtype)
    else:
        vae = AutoencoderKLWan.from_pretrained(Path(wan_path) / "vae", torch_dtype=dtype)
    return vae.to(device).eval().requires_grad_(False)


# the big frozen encoders load straight onto their device (device_map): 8 ranks x a 7B VLM never sit in CPU RAM
def umt5_tokenizer(wan_path: str | Path):
    from transformers import AutoTokenizer
    from nexus.convert import wan as original
    original_layout = original.is_original_wan(wan_path)      # google/umt5-xxl/ beside Wan's T5 .pth
    return AutoTokenizer.from_pretrained(Path(wan_path) / (original.TOKENIZER if original_layout else "tokenizer"))


def load_umt5(wan_path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    from transformers import UMT5EncoderModel
    from nexus.convert import wan as original
    tok = umt5_tokenizer(wan_path)
    if original.is_original_wan(wan_path):       # Wan's T5 .pth (memory-mapped)
        return tok, original.load_original_umt5(wan_path, dtype, device)
    enc = UMT5EncoderModel.from_pretrained(Path(wan_path) / "text_encoder", dtype=dtype, device_map=str(device))
    return tok, enc.eval().requires_grad_(False)


def is_causal_lm(vlm_path: str | Path) -> bool:
    """A plain language-model folder (e.g. the released VILA's ar_model/checkpoint/llm/, LlamaForCausalLM) rather
    than a VLM (Qwen2.5-VL, Qwen3-VL: *ForConditionalGeneration with a vision_config)."""
    cfg = read_config(Path(vlm_path) / "config.json")
    archs = cfg.get("architectures") or []
    return all(a.endswith("ForCausalLM") for a in archs) if archs else "vision_config" not in cfg


def load_vlm(vlm_path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """-> (tokenizer, model): a VLM folder through AutoModelForImageTextToText, a causal-LM folder through
    AutoModelForCausalLM (text-to-video reads only the language model)."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(vlm_path)
    auto = AutoModelForCausalLM if is_causal_lm(vlm_path) else AutoModelForImageTextToText
    model = auto.from_pretrained(vlm_path, dtype=dtype, device_map=str(device))
    return tok, model.eval().requires_grad_(False)
