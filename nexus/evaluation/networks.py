"""Feature networks of the VBench-style dimensions, loaded from local folders in the transformers layouts:
CLIP (`CLIPModel`: ViT-B/32 for background consistency and text-video similarity, ViT-L/14 for aesthetic
quality), DINO (`ViTModel`, ViT-B/16, subject consistency) and the LAION aesthetic linear head (a .pth/.pt or
.safetensors file with `weight` (1, D) and `bias`).

Preprocessing follows VBench rather than the processors' PIL path: frames are resized on the tensor (shorter
side to the processor's size, no antialias), centre-cropped for CLIP only (DINO keeps the aspect ratio and
interpolates its position embeddings), scaled to [0, 1] and normalised with the folder's mean/std.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from nexus.models.loading import LayoutError, read_config

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# The networks VBench scores with; a folder of another shape still works, its values are labelled proxy.
VBENCH_NETWORKS = {"dino": dict(hidden_size=768, patch_size=16), "clip_b32": dict(hidden_size=768, patch_size=32),
                   "clip_l14": dict(hidden_size=1024, patch_size=14)}


@dataclass
class Network:
    model: torch.nn.Module
    size: int                      # shorter side after resizing (and the crop, for CLIP)
    mean: tuple
    std: tuple
    crop: bool
    vision: dict                   # the vision config, to tell VBench's network from a stand-in
    tokenizer: object = None

    def matches(self, key: str) -> bool:
        return all(self.vision.get(k) == v for k, v in VBENCH_NETWORKS[key].items())


def _folder(path, what: str, architectures: tuple[str, ...], model_type: str) -> dict:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise LayoutError(f"{what}: {folder} has no config.json; give a local folder in the transformers layout "
                          f"(e.g. saved with save_pretrained), or leave it empty to report the dimension unavailable")
    cfg = read_config(folder / "config.json")
    if not set(cfg.get("architectures") or []) & set(architectures) and cfg.get("model_type") != model_type:
        raise LayoutError(f"{what}: {folder} holds {cfg.get('architectures') or cfg.get('model_type')}, "
                          f"expected one of {', '.join(architectures)}")
    return cfg


def _preprocessing(folder: Path, default_mean, default_std, default_size: int) -> tuple[int, tuple, tuple]:
    f = folder / "preprocessor_config.json"
    p = json.loads(f.read_text()) if f.is_file() else {}
    size = p.get("crop_size", p.get("size", default_size))
    if isinstance(size, dict):
        size = size.get("height", size.get("shortest_edge", default_size))
    return int(size), tuple(p.get("image_mean", default_mean)), tuple(p.get("image_std", default_std))


def load_clip(path, device="cpu", dtype=torch.float32) -> Network:
    from transformers import AutoTokenizer, CLIPModel
    cfg = _folder(path, "CLIP", ("CLIPModel",), "clip")
    size, mean, std = _preprocessing(Path(path), CLIP_MEAN, CLIP_STD, 224)
    model = CLIPModel.from_pretrained(path, dtype=dtype).to(device).eval().requires_grad_(False)
    tok = AutoTokenizer.from_pretrained(path)
    return Network(model, size, mean, std, crop=True, vision=cfg.get("vision_config", {}), tokenizer=tok)


def load_dino(path, device="cpu", dtype=torch.float32) -> Network:
    from transformers import ViTModel
    cfg = _folder(path, "DINO", ("ViTModel",), "vit")
    size, mean, std = _preprocessing(Path(path), IMAGENET_MEAN, IMAGENET_STD, 224)
    model = ViTModel.from_pretrained(path, dtype=dtype, add_pooling_layer=False).to(device).eval()
    return Network(model.requires_grad_(False), size, mean, std, crop=False, vision=cfg)


def load_linear_head(path, dim: int, device="cpu") -> torch.nn.Linear:
    """The LAION aesthetic predictor for CLIP ViT-L/14 is one Linear(768, 1)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"aesthetic head: no file {path} (the LAION linear head, e.g. "
                                f"sa_0_4_vit_l_14_linear.pth)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if set(state) != {"weight", "bias"} or tuple(state["weight"].shape) != (1, dim):
        raise ValueError(f"aesthetic head {path}: expected weight (1, {dim}) and bias, got "
                         f"{ {k: tuple(v.shape) for k, v in state.items()} } (is it the head for this CLIP?)")
    head = torch.nn.Linear(dim, 1)
    head.load_state_dict(state)
    return head.to(device).eval().requires_grad_(False)


def preprocess(net: Network, video: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> normalised float (T, 3, h, w) on the network's device and dtype."""
    p = next(net.model.parameters())
    x = video.to(p.device).permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    scale = net.size / min(h, w)
    size = (max(net.size, int(h * scale)), max(net.size, int(w * scale)))   # torchvision Resize(int) rounding
    x = F.interpolate(x, size=size, mode="bicubic" if net.crop else "bilinear", align_corners=False)
    if net.crop:
        top, left = (size[0] - net.size) // 2, (size[1] - net.size) // 2
        x = x[..., top:top + net.size, left:left + net.size]
    mean = torch.tensor(net.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(net.std, device=x.device).view(1, 3, 1, 1)
    return ((x / 255.0 - mean) / std).to(p.dtype)


@torch.no_grad()
def clip_image_embeds(net: Network, video: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """(T, D) projected CLIP image embeddings (VBench's encode_image), in float32."""
    outs = [net.model.get_image_features(pixel_values=preprocess(net, video[i:i + chunk])).pooler_output
            for i in range(0, video.shape[0], chunk)]
    return torch.cat(outs).float()


@torch.no_grad()
def clip_text_embeds(net: Network, texts: list[str]) -> torch.Tensor:
    p = next(net.model.parameters())
    max_len = net.model.config.text_config.max_position_embeddings
    tok = net.tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt").to(p.device)
    return net.model.get_text_features(input_ids=tok["input_ids"],
                                       attention_mask=tok["attention_mask"]).pooler_output.float()


@torch.no_grad()
def dino_features(net: Network, video: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """(T, D) DINO class-token features (the output of the final layer norm)."""
    outs = [net.model(pixel_values=preprocess(net, video[i:i + chunk]), interpolate_pos_encoding=True)
            .last_hidden_state[:, 0] for i in range(0, video.shape[0], chunk)]
    return torch.cat(outs).float()
