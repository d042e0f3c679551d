"""The frozen understanding block: a transformers VLM -> last-layer hidden states over the whole sequence."""
from __future__ import annotations

import torch

# Omni-Video wraps the prompt as a generation instruction before the VLM reads it.
INSTRUCTION = "Generate a video about:\n{prompt}"


def vlm_texts(tokenizer, prompts: list[str], instruction: str = INSTRUCTION) -> list[str]:
    """The VLM's input text: the instruction, in the tokenizer's chat template when it has one."""
    texts = [instruction.format(prompt=p.strip()) for p in prompts]
    if getattr(tokenizer, "chat_template", None):
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False,
                                               add_generation_prompt=True) for t in texts]
    return texts


@torch.no_grad()
def vlm_hidden_states(tokenizer, vlm, prompts: list[str], instruction: str = INSTRUCTION,
                      max_length: int = 1024) -> list[torch.Tensor]:
    """-> list of (L_i, d_vlm) last hidden states, one per prompt, padding removed."""
    device = next(vlm.parameters()).device
    t = tokenizer(vlm_texts(tokenizer, prompts, instruction), padding=True, truncation=True,
                  max_length=max_length, return_tensors="pt", padding_side="right")
    mask = t.attention_mask.to(device)
    out = vlm(input_ids=t.input_ids.to(device), attention_mask=mask, output_hidden_states=True)
    return [h[: int(n)] for h, n in zip(out.hidden_states[-1], mask.sum(1))]
