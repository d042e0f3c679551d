"""Contexts of the two generators (METHOD.md, "Injection"; DESIGN.md data flow).

Small generator: [start, connector tokens, end, start, UMT5 prompt tokens (unpadded), end], zero-padded to
`context_len` (Omni-Video raises Wan's text length to 2560 to hold it). Large generator: UMT5 tokens
zero-padded to `text_len`, 512 for Wan's checkpoints, exactly as diffusers' WanPipeline builds them.
"""
from __future__ import annotations

import torch

WAN_TEXT_LEN = 512   # Wan's text length: UMT5 tokens zero-padded to it (a generator trained with another
                     # model.text_len is sampled with that sampling.text_len)


def pad_tokens(tokens: list[torch.Tensor], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (L_i, D) -> zero-padded (B, length, D) and mask (B, length) with 1 on real tokens."""
    length = length or max(t.shape[0] for t in tokens)
    out = tokens[0].new_zeros(len(tokens), length, tokens[0].shape[-1])
    mask = torch.zeros(len(tokens), length, dtype=torch.bool, device=tokens[0].device)
    for i, t in enumerate(tokens):
        if t.shape[0] > length:
            raise ValueError(f"{t.shape[0]} tokens do not fit a context of {length}: raise model.context_len")
        out[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return out, mask


def small_context(connector_tokens: torch.Tensor, umt5: list[torch.Tensor], markers: torch.Tensor,
                  context_len: int) -> torch.Tensor:
    """connector_tokens (B, N, D), umt5 list of (T_i, D), markers (2, D) = [start, end] around both blocks, or
    (4, D) = [<ipl_st>, <ipl_ed>, <prp_st>, <prp_ed>] as released -> (B, context_len, D)."""
    if markers.shape[0] not in (2, 4):
        raise ValueError(f"markers must hold 2 ([start, end]) or 4 (per block) embeddings, not {markers.shape[0]}")
    m = markers.to(connector_tokens.dtype)
    a_st, a_ed, p_st, p_ed = (m[0:1], m[1:2], m[0:1], m[1:2]) if len(m) == 2 else (m[0:1], m[1:2], m[2:3], m[3:4])
    seqs = [torch.cat([a_st, q, a_ed, p_st, u.to(q.dtype), p_ed]) for q, u in zip(connector_tokens, umt5)]
    return pad_tokens(seqs, context_len)[0]


def wan_context(umt5: list[torch.Tensor], text_len: int = WAN_TEXT_LEN) -> torch.Tensor:
    """The large generator's (and any stock Wan's) context: UMT5 tokens zero-padded to text_len -> (B, text_len, D).
    Padding keys are not masked in Wan's cross-attention, so the length is part of what a generator learned."""
    longest = max(u.shape[0] for u in umt5)
    if longest > text_len:
        raise ValueError(f"a prompt has {longest} UMT5 tokens, more than text_len={text_len}: raise model.text_len "
                         f"(training) or sampling.text_len (sampling), or shorten the prompt")
    return pad_tokens(umt5, text_len)[0]


def required_context_len(num_connector_tokens: int, max_text_tokens: int = 512) -> int:
    return num_connector_tokens + max_text_tokens + 4
