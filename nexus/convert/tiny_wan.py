"""A tiny random Wan2.1 folder in the original layout (nexus.convert.wan), for the tests and for tiny copies of
the releases that ship one (OmniVideo11B's wan/wanxiang1_3b, Wan2.1-T2V-14B).

The transformer and UMT5 are nexus.models.tiny's; the VAE is not, since diffusers' converter reads only Wan2.1's
VAE structure (4 levels of 2 residual blocks): here that structure at base_dim 4, the same latent space as the tiny
diffusers folders (z_dim 16, Wan2.1's statistics, 4x temporal and 8x spatial compression)."""
from __future__ import annotations

from pathlib import Path

import torch

from nexus.convert import wan
from nexus.models.tiny import TRANSFORMER, UMT5, _tokenizer

VAE = dict(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True])
SHARDS = 3          # the sharded variant: 3 files + the index (Wan2.1-T2V-14B ships 6)


def write_tiny_original_wan(folder, sharded: bool = False, seed: int = 0, vae: dict | None = None) -> Path:
    """Write config.json (no text_dim), the transformer (one file, or SHARDS shards + index), Wan2.1_VAE.pth,
    models_t5_umt5-xxl-enc-bf16.pth (bf16) and google/umt5-xxl/ into `folder`; the same tensors for the same seed.
    vae: overrides of VAE (e.g. temperal_downsample=[False, False, True]: another latent space). Writes in place:
    build through nexus.models.tiny.ensure_folder for an atomic, once-only folder."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        transformer = WanTransformer3DModel(**dict(TRANSFORMER, text_dim=UMT5["d_model"]))   # reads the T5's width
        autoencoder = AutoencoderKLWan(**{**VAE, **(vae or {})})
        t5 = UMT5EncoderModel(UMT5Config(**UMT5))
    wan.save_original_transformer(transformer, None, folder, shards=SHARDS if sharded else 1)
    wan.save_original_vae(autoencoder, folder / wan.VAE_FILE)
    wan.save_original_t5(t5, folder / wan.T5_FILE)
    _tokenizer("<pad>", "</s>", t5_style=True).save_pretrained(folder / wan.TOKENIZER)
    return folder
