"""Omni-Video query connector: VLM hidden states -> generator context tokens (METHOD.md, "Connector").

Two learnable-query encoder-decoder transformers in series:
  vision head: MLP d_vlm -> d_v -> d_v, nn.Transformer(d_v) decoding `vision_queries` queries;
  adapter:     MLP d_v -> d_a -> d_a, nn.Transformer(d_a) decoding `adapter_queries` queries from each
               vision-head token separately, so a video gets vision_queries x adapter_queries tokens.
It also owns the learned start/end marker embeddings of the concatenated small-generator context.

The released Omni-Video / Lumos-Nexus connector (`alibaba-damo-academy/Lumos-Custom`, VisionHead and DM_Adapter) is
this same module with other options (PRESETS["omnivideo_v1"]): 8 heads in both transformers, PyTorch's default ReLU
feed-forward inside them, exact (erf) GELU in the two MLPs, and four distinct markers (<ipl_st>, <ipl_ed> around the
connector tokens, <prp_st>, <prp_ed> around the UMT5 tokens). The defaults are nexus's first architecture (16/32
heads, tanh-GELU everywhere, one [start, end] pair shared by both blocks), which every export written before these
options has, since a config.json without them reads as the defaults.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class ConnectorConfig:
    vlm_dim: int = 3584              # hidden size of the understanding block (Qwen2.5-VL-7B)
    vision_dim: int = 1152
    vision_layers: int = 4           # encoder and decoder layers each
    vision_heads: int = 16
    vision_ffn: int = 4608
    vision_queries: int = 4
    out_dim: int = 4096              # = the generator's text_dim (UMT5-XXL width)
    adapter_layers: int = 4
    adapter_heads: int = 32
    adapter_ffn: int = 16384
    adapter_queries: int = 256
    dropout: float = 0.0
    mlp_activation: str = "gelu_tanh"      # the two input MLPs: gelu_tanh | gelu (exact erf, the release)
    ffn_activation: str = "gelu"           # the nn.Transformer feed-forwards: gelu | relu (the release)
    markers: str = "shared"                # shared: [start, end] around both blocks | per_block: 4 (the release)

    def __post_init__(self):
        for name, allowed in (("mlp_activation", MLP_ACTIVATIONS), ("ffn_activation", FFN_ACTIVATIONS),
                              ("markers", MARKER_LAYOUTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"model.connector.{name}={getattr(self, name)!r}: choose one of {allowed}")
        for dim, heads, name in ((self.vision_dim, self.vision_heads, "vision"), (self.out_dim, self.adapter_heads,
                                                                                   "adapter")):
            if heads < 1 or dim % heads:
                raise ValueError(f"model.connector.{name}_heads={heads} must divide its width {dim}")

    @property
    def num_markers(self) -> int:
        return 2 if self.markers == "shared" else 4

    @property
    def num_tokens(self) -> int:
        return self.vision_queries * self.adapter_queries

    def to_dict(self) -> dict:
        return asdict(self)


MLP_ACTIVATIONS = ("gelu_tanh", "gelu")
FFN_ACTIVATIONS = ("gelu", "relu")
MARKER_LAYOUTS = ("shared", "per_block")
# the release's architecture (Lumos-Custom: VisionHead(llm_hidden_size=4096, learnable_query_length=4), DM_Adapter(
# 1152 -> 4096, 256 queries), both nn.Transformer(nhead default 8, dim_feedforward 4 d, ReLU, norm_first))
PRESETS = {"omnivideo_v1": dict(vlm_dim=4096, vision_dim=1152, vision_layers=4, vision_heads=8, vision_ffn=4608,
                                vision_queries=4, out_dim=4096, adapter_layers=4, adapter_heads=8, adapter_ffn=16384,
                                adapter_queries=256, mlp_activation="gelu", ffn_activation="relu",
                                markers="per_block")}


def _mlp(d_in: int, d_out: int, activation: str) -> nn.Sequential:
    act = nn.GELU(approximate="tanh") if activation == "gelu_tanh" else nn.GELU()
    return nn.Sequential(nn.Linear(d_in, d_out), act, nn.Linear(d_out, d_out))


def _transformer(d: int, layers: int, heads: int, ffn: int, dropout: float, activation: str) -> nn.Transformer:
    return nn.Transformer(d_model=d, nhead=heads, num_encoder_layers=layers, num_decoder_layers=layers,
                          dim_feedforward=ffn, dropout=dropout, activation=activation, batch_first=True,
                          norm_first=True)


class OmniConnector(nn.Module):
    def __init__(self, config: ConnectorConfig):
        super().__init__()
        c = self.config = config
        self.vision_in = _mlp(c.vlm_dim, c.vision_dim, c.mlp_activation)
        self.vision = _transformer(c.vision_dim, c.vision_layers, c.vision_heads, c.vision_ffn, c.dropout,
                                   c.ffn_activation)
        self.vision_queries = nn.Parameter(torch.randn(c.vision_queries, c.vision_dim) * 0.02)
        self.adapter_in = _mlp(c.vision_dim, c.out_dim, c.mlp_activation)
        self.adapter = _transformer(c.out_dim, c.adapter_layers, c.adapter_heads, c.adapter_ffn, c.dropout,
                                    c.ffn_activation)
        self.adapter_queries = nn.Parameter(torch.randn(c.adapter_queries, c.out_dim) * 0.02)
        # learned markers around each block of the concatenated context: [start, end] shared by both blocks, or
        # per block [connector start, connector end, prompt start, prompt end] (nexus.models.conditioning)
        self.markers = nn.Parameter(torch.randn(c.num_markers, c.out_dim) * 0.02)
        self.gradient_checkpointing = False

    # as diffusers' ModelMixin has them: a DiffusionPipeline reads its components' .device and .dtype
    device = property(lambda self: self.vision_queries.device)
    dtype = property(lambda self: self.vision_queries.dtype)

    def _run(self, tf: nn.Transformer, src, queries, pad_mask=None):
        tgt = queries.unsqueeze(0).expand(src.shape[0], -1, -1).to(src.dtype)
        if self.gradient_checkpointing and self.training:
            return torch.utils.checkpoint.checkpoint(tf, src, tgt, None, None, None, pad_mask, None, pad_mask,
                                                     use_reentrant=False)
        # memory_key_padding_mask = src pad mask: decoder queries must not attend to padding either
        return tf(src, tgt, src_key_padding_mask=pad_mask, memory_key_padding_mask=pad_mask)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None, video: bool = True) -> torch.Tensor:
        """hidden (B, L, vlm_dim), mask (B, L) with 1 = token -> (B, vision_queries*adapter_queries, out_dim).

        video=False keeps only the first vision-head token (single image, Omni-Video convention)."""
        if hidden.shape[-1] != self.config.vlm_dim:
            raise ValueError(f"connector expects VLM hidden size {self.config.vlm_dim}, got {hidden.shape[-1]}: "
                             f"set connector.vlm_dim to the VLM's hidden size")
        pad = None if mask is None else ~mask.bool()
        v = self._run(self.vision, self.vision_in(hidden), self.vision_queries, pad)      # (B, Qv, d_v)
        if not video:
            v = v[:, :1]
        b, qv, _ = v.shape
        a = self._run(self.adapter, self.adapter_in(v).reshape(b * qv, 1, -1), self.adapter_queries)
        return a.reshape(b, qv * self.config.adapter_queries, -1)


def full_markers(connector: "OmniConnector") -> torch.Tensor:
    """The connector's markers for building a context outside its forward. Under ZeRO-3 a parameter is gathered only
    inside its module's forward, so here it may still be a 0-element partition: gather it (no gradient: this is
    for sampling; training reads them while the step holds them)."""
    m = connector.markers
    if m.numel() == 0 and hasattr(m, "ds_id"):
        import deepspeed
        with deepspeed.zero.GatheredParameters([m]):
            return m.detach().clone()
    return m
