"""Tiny random feature networks in the layouts the real ones come in, for the `tiny` evaluation recipe and the
tests: `root/eval/clip` (CLIPModel + tokenizer + preprocessor config), `root/eval/dino` (ViTModel) and
`root/eval/aesthetic_head.safetensors` (a Linear(projection_dim, 1), the LAION head's shape)."""
from __future__ import annotations

from pathlib import Path

import torch

from nexus.models.tiny import SPECIALS, _tokenizer, ensure_folder

SIZE = 32
CLIP_TEXT = dict(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=64)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=SIZE,
              patch_size=8)
PROJECTION = 16


def _build(out: Path) -> None:
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, ViTConfig, ViTImageProcessor, ViTModel

    tok = _tokenizer("<pad>", "</s>", t5_style=False)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    text = dict(CLIP_TEXT, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=VISION, projection_dim=PROJECTION))
    clip.save_pretrained(out / "clip")
    tok.save_pretrained(out / "clip")
    CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}).save_pretrained(
        out / "clip")
    ViTModel(ViTConfig(**VISION), add_pooling_layer=False).save_pretrained(out / "dino")
    ViTImageProcessor(size={"height": SIZE, "width": SIZE}).save_pretrained(out / "dino")
    head = torch.nn.Linear(PROJECTION, 1)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, out / "aesthetic_head.safetensors")


def ensure_tiny_eval_models(root: str | Path, seed: int = 0) -> dict[str, str]:
    """{"clip", "clip_large", "dino", "aesthetic_head"} under `root/eval`, built once; the one tiny CLIP stands
    in for both ViT-B/32 and ViT-L/14."""
    folder = Path(ensure_folder(Path(root) / "eval", _build, seed))
    return {"clip": str(folder / "clip"), "clip_large": str(folder / "clip"), "dino": str(folder / "dino"),
            "aesthetic_head": str(folder / "aesthetic_head.safetensors")}
