"""Model FLOPs of one stage-1 training sample (forward + backward = 3 x forward; recomputation from
gradient checkpointing is not counted, as usual for MFU). Matmuls only: 2 FLOPs per multiply-add."""
from __future__ import annotations


def wan_forward_flops(cfg: dict, tokens: int, context: int) -> float:
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    per_layer = (
        2 * tokens * 4 * d * d            # self-attention q, k, v, o
        + 2 * 2 * tokens * tokens * d     # self-attention scores and weighted sum
        + 2 * tokens * 2 * d * d          # cross-attention q, o
        + 2 * context * 2 * d * d         # cross-attention k, v over the context
        + 2 * 2 * tokens * context * d    # cross-attention scores and weighted sum
        + 2 * tokens * 2 * d * cfg["ffn_dim"])
    patch = cfg["in_channels"] * cfg["patch_size"][0] * cfg["patch_size"][1] * cfg["patch_size"][2]
    embed = 2 * tokens * patch * d * 2 + 2 * context * (cfg["text_dim"] * d + d * d)
    return cfg["num_layers"] * per_layer + embed


def _transformer_flops(d: int, ffn: int, layers: int, src: int, tgt: int) -> float:
    enc = layers * (2 * src * (4 * d * d + 2 * d * ffn) + 4 * src * src * d)
    dec = layers * (2 * tgt * (4 * d * d + 2 * d * ffn) + 4 * tgt * tgt * d        # self-attn + ffn
                    + 2 * tgt * 2 * d * d + 2 * src * 2 * d * d + 4 * tgt * src * d)  # cross-attn
    return enc + dec


def connector_forward_flops(c: dict, vlm_tokens: int) -> float:
    vision = (2 * vlm_tokens * (c["vlm_dim"] + c["vision_dim"]) * c["vision_dim"]
              + _transformer_flops(c["vision_dim"], c["vision_ffn"], c["vision_layers"], vlm_tokens,
                                   c["vision_queries"]))
    per_token = (2 * (c["vision_dim"] + c["out_dim"]) * c["out_dim"]
                 + _transformer_flops(c["out_dim"], c["adapter_ffn"], c["adapter_layers"], 1, c["adapter_queries"]))
    return vision + c["vision_queries"] * per_token


def train_flops_per_sample(transformer_cfg: dict, connector_cfg: dict | None, latent_tokens: int, context_len: int,
                           vlm_tokens: int) -> float:
    """connector_cfg None: a generator trained on its own (model.conditioning=umt5)."""
    fwd = wan_forward_flops(transformer_cfg, latent_tokens, context_len) + \
        (connector_forward_flops(connector_cfg, vlm_tokens) if connector_cfg else 0.0)
    return 3.0 * fwd
