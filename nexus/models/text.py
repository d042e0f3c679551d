"""UMT5 prompt embeddings, Wan style: tokens up to the prompt's length (the caller pads with zeros)."""
from __future__ import annotations

import torch


@torch.no_grad()
def encode_umt5(tokenizer, encoder, prompts: list[str], max_length: int = 512) -> list[torch.Tensor]:
    """-> list of (T_i, D) last hidden states, T_i = the prompt's token count (<= max_length)."""
    device = next(encoder.parameters()).device
    # Wan pads to 512 before encoding; the attention mask keeps padding out of every real token's output, so
    # padding to the longest prompt gives the same features (equal to ~1e-6 in fp32, tests/test_understanding.py)
    # for a fraction of the encoder's work: prompts are ~20-100 tokens
    t = tokenizer([p.strip() for p in prompts], padding="longest", max_length=max_length, truncation=True,
                  add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    mask = t.attention_mask.to(device)
    hidden = encoder(t.input_ids.to(device), mask).last_hidden_state
    return [h[: int(n)] for h, n in zip(hidden, mask.sum(1))]
