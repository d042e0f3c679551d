"""A tiny random OmniVideo11B bundle laid out exactly like the release (file and folder names, torch / pickle /
safetensors formats, the `module.` and `model_state_dict` wrappers, key prefixes, a sharded original-layout
Wan2.1-T2V-14B beside it), so that the converter, the samplers and the tests go through the code that reads the
real one. Written from what the reference code reads (nexus.convert.omnivideo.FILES); deterministic.

  root/wan/wanxiang1_3b/          tiny Wan2.1 in the original layout (config.json without text_dim, .pth VAE / T5)
  root/Wan2.1-T2V-14B/            a bigger tiny original-layout Wan, sharded with an index, the same VAE and T5
  root/adapter/model.pt           {"model_state_dict": {"module.<DM_Adapter key>": ...}, "epoch", "step"}
  root/vision_head/vision_head/pytorch_model.bin   VisionHead state dict (bf16, as the release's)
  root/transformer/model.pt       {"module": {wan_model.*, adapter.*, ar_vision_head.*, visual_context_adapter.*}}:
                                  weights that differ from the separate files', as a later training stage's do
  root/ar_model/checkpoint/llm/   a tiny Llama with Llama-3's special tokens (transformers layout)
  root/special_tokens/tokens.pkl  six (1, D) markers; root/unconditioned_context/context.pkl   the null conditions
"""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import torch
from safetensors import safe_open

from nexus.convert.omnivideo import FILES, _connector_to_release
from nexus.models.connector import PRESETS, ConnectorConfig, OmniConnector


def tiny_connector_config(vlm_dim: int, out_dim: int) -> ConnectorConfig:
    """The release's architecture (8 heads, ReLU, exact GELU, 4 markers, 4 + 4 layers, 4 d feed-forwards) at tiny
    widths."""
    return ConnectorConfig(**{**PRESETS["omnivideo_v1"], "vlm_dim": vlm_dim, "vision_dim": 16, "vision_ffn": 64,
                              "out_dim": out_dim, "adapter_ffn": 4 * out_dim, "adapter_queries": 8})


def _original_state(folder: Path) -> dict:
    out = {}
    for f in sorted(folder.glob("diffusion_pytorch_model*.safetensors")):
        with safe_open(str(f), "pt") as g:
            out |= {k: g.get_tensor(k) for k in g.keys()}
    return out


def _build(root: Path, seed: int) -> None:
    from nexus.convert.tiny_wan import write_tiny_original_wan
    from nexus.models.tiny_llama import write_tiny_llama3
    g = torch.Generator().manual_seed(seed)
    wan = root / FILES["wan"]
    write_tiny_original_wan(wan, sharded=False, seed=seed)
    large = root / "Wan2.1-T2V-14B"
    write_tiny_original_wan(large, sharded=True, seed=seed + 1)
    for f in ("Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth"):     # one latent space, one text encoder
        shutil.copy2(wan / f, large / f)
    llm = root / FILES["llm"]
    write_tiny_llama3(llm, seed=seed)
    (llm.parent / "config.json").write_text(json.dumps({"architectures": ["LlavaLlamaModel"], "note": "tiny"}))
    vlm_dim = json.loads((llm / "config.json").read_text())["hidden_size"]
    stock = _original_state(wan)
    out_dim = stock["text_embedding.0.weight"].shape[1]

    torch.manual_seed(seed)
    conn = OmniConnector(tiny_connector_config(vlm_dim, out_dim)).state_dict()
    vh, ad = _connector_to_release(conn)
    vh = {k: v.to(torch.bfloat16) for k, v in vh.items()}           # the release's vision head is bf16
    for rel in ("adapter", "vision_head/vision_head", "transformer", "special_tokens", "unconditioned_context"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in ad.items()}, "epoch": 3, "step": 1000},
               root / FILES["adapter"])
    torch.save(vh, root / FILES["vision_head"])

    def nudged(state):   # a later stage's weights: transformer/model.pt overrides the separate files
        return {k: v + 0.01 * torch.randn(v.shape, generator=g).to(v.dtype) for k, v in state.items()}
    model_pt = {f"wan_model.{k}": v for k, v in nudged(stock).items()}
    model_pt |= {f"adapter.{k}": v for k, v in nudged(ad).items()}
    model_pt |= {f"ar_vision_head.{k}": v for k, v in nudged(vh).items()}
    model_pt |= {"visual_context_adapter.patch_embedding.weight": torch.randn(8, 16, 1, 4, 4, generator=g),
                 "visual_context_adapter.patch_embedding.bias": torch.randn(8, generator=g),
                 "visual_context_adapter.proj.weight": torch.randn(out_dim, 8, generator=g)}
    torch.save({"module": model_pt}, root / FILES["transformer"])
    tokens = {k: torch.randn(1, out_dim, generator=g).to(torch.bfloat16)
              for k in ("<img_st>", "<img_ed>", "<ipl_st>", "<ipl_ed>", "<prp_st>", "<prp_ed>")}
    with open(root / FILES["special_tokens"], "wb") as f:
        pickle.dump(tokens, f)
    null = {"text_emb": [torch.randn(7, out_dim, generator=g)],
            "vlm_last_hidden_states": torch.randn(1, 11, vlm_dim, generator=g).half(),
            "text_emb_siglip2": [torch.randn(1, 16, generator=g)]}
    with open(root / FILES["null"], "wb") as f:
        pickle.dump(null, f)


def write_tiny_bundle(root: str | Path, seed: int = 0) -> dict[str, str]:
    """Build the tiny bundle under `root` once (atomically); -> {"bundle", "large"}."""
    from nexus.models.tiny import ensure_folder
    root = Path(root)
    ensure_folder(root, lambda tmp: _build(tmp, seed), seed)
    return {"bundle": str(root), "large": str(root / "Wan2.1-T2V-14B")}
