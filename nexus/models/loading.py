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
    """Raise LayoutError naming the config key, the path and the expected layout if `path` does not fit."""
    expected = ", ".join(" or ".join(f) for f in layout.values())
    how = f"set {key}=/path/to/folder" + (f" or the environment variable {env}" if env else "")
    if not path:
        raise LayoutError(f"{key} is not set: {how}. The folder must hold {expected}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise LayoutError(f"{key}={path}: no such folder ({how}). It must hold {expected}")
    missing = [" or ".join(files) for name, files in layout.items()
               if (parts is None or name in parts) and not any((root / f).is_file() for f in files)]
    if missing:
        raise LayoutError(f"{key}={path} is not laid out as expected: missing {', '.join(missing)}. "
                          f"The folder must hold {expected}")
    return root


def read_config(path: Path) -> dict:
    return json.loads(Path(path).read_text())


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
    """random_init: the architecture of transformer/config.json with fresh weights (benchmarks at real size)."""
    from diffusers import WanTransformer3DModel
    if random_init:
        config = read_config(Path(wan_path) / "transformer" / "config.json")
        return cast_like_pretrained(WanTransformer3DModel.from_config(config), dtype)
    return WanTransformer3DModel.from_pretrained(Path(wan_path) / "transformer", torch_dtype=dtype)


def load_vae(wan_path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    from diffusers import AutoencoderKLWan
    vae = AutoencoderKLWan.from_pretrained(Path(wan_path) / "vae", torch_dtype=dtype)
    return vae.to(device).eval().requires_grad_(False)


# the big frozen encoders load straight onto their device (device_map): 8 ranks x a 7B VLM never sit in CPU RAM
def load_umt5(wan_path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    from transformers import AutoTokenizer, UMT5EncoderModel
    tok = AutoTokenizer.from_pretrained(Path(wan_path) / "tokenizer")
    enc = UMT5EncoderModel.from_pretrained(Path(wan_path) / "text_encoder", dtype=dtype, device_map=str(device))
    return tok, enc.eval().requires_grad_(False)


def load_vlm(vlm_path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    from transformers import AutoModelForImageTextToText, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(vlm_path)
    model = AutoModelForImageTextToText.from_pretrained(vlm_path, dtype=dtype, device_map=str(device))
    return tok, model.eval().requires_grad_(False)
