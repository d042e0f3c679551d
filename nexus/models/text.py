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


def too_long(tokenizer, texts: list[str], limit: int) -> list[tuple[int, int]]:
    """(index, token count) of the texts with more than `limit` tokens, which encoding would cut."""
    counts = [len(ids) for ids in tokenizer([t.strip() for t in texts], add_special_tokens=True)["input_ids"]]
    return [(i, n) for i, n in enumerate(counts) if n > limit]


VLM_MAX_TOKENS = 1024       # nexus.models.understanding.vlm_hidden_states' max_length (chat_template recipe)


def check_prompt_lengths(prompts: list, wan_path: str, text_len: int, vlm_path: str | None = None,
                         prompt_recipe: str | None = None, truncate: bool = False) -> None:
    """A prompt the text encoders would cut (UMT5 at sampling.text_len tokens, the VLM's chat_template input at
    1024) is an error naming it, unless sampling.truncate_prompts=true. Tokenizers only: nothing heavy loads."""
    if truncate:
        return
    from nexus.errors import UserError
    from nexus.models.loading import umt5_tokenizer
    texts = [p.text for p in prompts]
    checks = [("UMT5", umt5_tokenizer(wan_path), texts, text_len, f"sampling.text_len={text_len}")]
    if vlm_path and (prompt_recipe or "chat_template") == "chat_template":
        from transformers import AutoTokenizer
        from nexus.models.understanding import vlm_texts
        tok = AutoTokenizer.from_pretrained(vlm_path)
        checks.append(("VLM", tok, vlm_texts(tok, texts), VLM_MAX_TOKENS, f"the VLM's {VLM_MAX_TOKENS}"))
    for name, tok, inputs, limit, said in checks:
        over = too_long(tok, inputs, limit)
        if over:
            i, n = over[0]
            more = f" (and {len(over) - 1} more)" if len(over) > 1 else ""
            raise UserError(f"prompt {prompts[i].id} is {n} {name} tokens, more than {said}{more}: shorten it, or "
                            "set sampling.truncate_prompts=true to cut it as the tokenizer would")
