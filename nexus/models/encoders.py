"""The frozen encoders of stage 1 (VAE, UMT5, VLM), kept out of the trainable module tree so that neither
checkpoints nor DeepSpeed partitions ever hold them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from nexus.models import codec, loading, text, understanding


@dataclass
class FrozenEncoders:
    vae: torch.nn.Module | None
    umt5_tokenizer: object
    umt5: torch.nn.Module
    vlm_tokenizer: object = None        # no VLM: a UMT5-only generator (the stock-Wan baseline)
    vlm: torch.nn.Module | None = None
    instruction: str = understanding.INSTRUCTION
    prompt_recipe: str = "chat_template"     # nexus.models.understanding.PROMPT_RECIPES

    def __post_init__(self):
        understanding.check_prompt_recipe(self.prompt_recipe)

    @classmethod
    def load(cls, wan_path: str, vlm_path: str | None, dtype: torch.dtype = torch.float32,
             instruction: str = understanding.INSTRUCTION, device: str | torch.device = "cpu",
             prompt_recipe: str = "chat_template", vlm_dtype: torch.dtype | None = None) -> "FrozenEncoders":
        """vlm_dtype: the VLM's own dtype (None: `dtype`); the released model's VILA LLM ran in fp16."""
        understanding.check_prompt_recipe(prompt_recipe)          # before anything loads
        ut, u = loading.load_umt5(wan_path, dtype, device)
        vlm_dtype = dtype if vlm_dtype is None else vlm_dtype
        vt, v = loading.load_vlm(vlm_path, vlm_dtype, device) if vlm_path else (None, None)
        return cls(loading.load_vae(wan_path, dtype, device), ut, u, vt, v, instruction, prompt_recipe)

    def to(self, device) -> "FrozenEncoders":
        for m in (self.vae, self.umt5, self.vlm):
            if m is not None:
                m.to(device)
        return self

    def prompts(self, captions: list[str]) -> dict[str, list[torch.Tensor]]:
        """-> {"umt5": [(T_i, 4096)], "vlm": [(L_i, d_vlm)]}: the per-prompt features stage 1 trains on."""
        out = {"umt5": text.encode_umt5(self.umt5_tokenizer, self.umt5, captions)}
        if self.vlm is not None:
            out["vlm"] = understanding.vlm_hidden_states(self.vlm_tokenizer, self.vlm, captions, self.instruction,
                                                         prompt_recipe=self.prompt_recipe)
        return out

    def latents(self, video: torch.Tensor) -> torch.Tensor:
        return codec.encode_video(self.vae, video)


def save_null_features(path: str | Path, feats: dict[str, list[torch.Tensor]]) -> None:
    """The empty prompt's features (the CFG null condition), for training from precomputed shards."""
    save_file({k: v[0].contiguous().float() for k, v in feats.items()}, str(path))


def load_null_features(path: str | Path) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"null features {path} not found: precomputed shards need the empty prompt's "
                                f"features beside them (null.safetensors with 'umt5' and 'vlm')")
    return load_file(str(path))
