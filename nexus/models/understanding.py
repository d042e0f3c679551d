"""The frozen understanding block: a transformers VLM (or plain causal LM) -> last-layer hidden states.

Two prompt recipes (`prompt_recipe`):
  chat_template  the instruction in the tokenizer's own chat template (no system line); the states of the real
                 (mask) tokens. nexus's default.
  vila_llama3    the released model's (Omni-Video / Lumos-Nexus `VilaARVideoModel.general_emb`, text-to-video):
                 VILA's `llama_3` conversation read by VILA's LLM (ar_model/checkpoint/llm/, a Llama-3
                 LlamaForCausalLM), reproduced with its traits; see `vila_llama3_text` and `vila_llama3_ids`.
"""
from __future__ import annotations

import torch

# Omni-Video wraps the prompt as a generation instruction before the VLM reads it.
INSTRUCTION = "Generate a video about:\n{prompt}"
PROMPT_RECIPES = ("chat_template", "vila_llama3")

# VILA's conv_templates["llama_3"] (llava/conversation.py, SeparatorStyle.LLAMA_3)
VILA_LLAMA3_SYSTEM = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and "
                      "vision assistant. You are able to understand the visual content that the user provides, and "
                      "assist the user with a variety of tasks using natural language.")
VILA_LLAMA3_ROLES = ("<|start_header_id|>user<|end_header_id|>\n\n",
                     "<|start_header_id|>assistant<|end_header_id|>\n\n")
VILA_LLAMA3_SEP, VILA_LLAMA3_SEP2 = "<|eot_id|>", "<|end_of_text|>"
VILA_VIDEO_ANSWER = "[GEN_VID]"        # the assistant turn general_emb appends for text-to-video


def check_prompt_recipe(prompt_recipe: str, key: str = "prompt_recipe") -> str:
    """Refuse an unknown recipe, naming the config key (e.g. model.prompt_recipe) and the choices."""
    if prompt_recipe not in PROMPT_RECIPES:
        raise ValueError(f"{key}={prompt_recipe!r}: choose one of {PROMPT_RECIPES}")
    return prompt_recipe


def vila_llama3_text(prompt: str, instruction: str = INSTRUCTION) -> str:
    """VILA's `llama_3` conversation as general_emb builds it: system + sep, user turn + sep, assistant turn
    "[GEN_VID]" + sep2 (<|end_of_text|>: the last message takes sep2, every other one sep <|eot_id|>).
    The prompt is NOT stripped (the reference does not strip it); the text itself starts with <|begin_of_text|>."""
    turns = [(VILA_LLAMA3_ROLES[0], instruction.format(prompt=prompt)), (VILA_LLAMA3_ROLES[1], VILA_VIDEO_ANSWER)]
    text = VILA_LLAMA3_SYSTEM + VILA_LLAMA3_SEP
    for i, (role, message) in enumerate(turns):
        text += role + message + (VILA_LLAMA3_SEP if i < len(turns) - 1 else VILA_LLAMA3_SEP2)
    return text


def vlm_texts(tokenizer, prompts: list[str], instruction: str = INSTRUCTION,
              prompt_recipe: str = "chat_template") -> list[str]:
    """The VLM's input text: chat_template: the (stripped) instruction, in the tokenizer's chat template when it
    has one; vila_llama3: `vila_llama3_text`."""
    if check_prompt_recipe(prompt_recipe) == "vila_llama3":
        return [vila_llama3_text(p, instruction) for p in prompts]
    texts = [instruction.format(prompt=p.strip()) for p in prompts]
    if getattr(tokenizer, "chat_template", None):
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False,
                                               add_generation_prompt=True) for t in texts]
    return texts


def vila_mask_id(tokenizer) -> int:
    """The id the reference masks: `pad_token_id if not None else eos_token_id`."""
    masked = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if masked is None:
        raise ValueError("prompt_recipe=vila_llama3: the VLM's tokenizer has neither a pad nor an eos token")
    return masked


def vila_llama3_ids(tokenizer, text: str) -> tuple[list[int], list[int]]:
    """-> (ids, mask) as the reference builds them, traps included:
    - VILA's `tokenizer_image_token` (no <image> in a T2V prompt: one chunk) tokenizes with the tokenizer's own
      special tokens and keeps the chunk's leading BOS, so a Llama-3 tokenizer puts its BOS before the text's own
      <|begin_of_text|>: the sequence starts with TWO BOS ids;
    - the mask is `ids != (pad if the tokenizer has one else eos)`: with Llama-3's tokenizer (no pad, eos
      <|end_of_text|>) it masks the closing <|end_of_text|> (sep2), i.e. every eos token inside the sequence.
    No truncation (the reference has none)."""
    ids = tokenizer(text).input_ids
    masked = vila_mask_id(tokenizer)
    return ids, [int(i != masked) for i in ids]


@torch.no_grad()
def vlm_hidden_states(tokenizer, vlm, prompts: list[str], instruction: str = INSTRUCTION,
                      max_length: int = 1024, prompt_recipe: str = "chat_template") -> list[torch.Tensor]:
    """-> list of (L_i, d_vlm) last hidden states, one per prompt.
    chat_template: the real tokens' states (padding removed; truncated to max_length).
    vila_llama3: the reference's states over each prompt's WHOLE sequence, the masked (<|end_of_text|>) positions
    included, L_i = the prompt's own token count (not the mask sum). The reference encodes one prompt at a time;
    here a batch is padded on the right with the masked id (so the pads are masked by the same rule) and each
    prompt's own length is kept: with causal attention and right padding a prompt's states do not depend on its
    batch. The dtype is the VLM's (fp16 in the reference: FrozenEncoders.load(vlm_dtype=torch.float16))."""
    device = next(vlm.parameters()).device
    texts = vlm_texts(tokenizer, prompts, instruction, prompt_recipe)
    if prompt_recipe == "vila_llama3":
        encoded = [vila_llama3_ids(tokenizer, t) for t in texts]
        n = max(len(ids) for ids, _ in encoded)
        pad = vila_mask_id(tokenizer)
        ids = torch.tensor([i + [pad] * (n - len(i)) for i, _ in encoded], device=device)
        mask = torch.tensor([m + [0] * (n - len(m)) for _, m in encoded], device=device)
        out = vlm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return [h[: len(i)] for h, (i, _) in zip(out.hidden_states[-1], encoded)]
    t = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt",
                  padding_side="right")
    mask = t.attention_mask.to(device)
    out = vlm(input_ids=t.input_ids.to(device), attention_mask=mask, output_hidden_states=True)
    return [h[: int(n)] for h, n in zip(out.hidden_states[-1], mask.sum(1))]
