"""A tiny Llama-3-style language-model folder: what the released OmniVideo11B bundle holds in
`ar_model/checkpoint/llm/` (VILA's LLM, a plain transformers LlamaForCausalLM with the Llama-3 tokenizer), at toy
size, so the `vila_llama3` prompt recipe and the bundle loaders run offline.

The tokenizer copies the traits the recipe depends on: <|begin_of_text|> is BOS and is added to every encoding
(Llama-3's TemplateProcessing post-processor), <|end_of_text|> is EOS, and there is NO pad token, so the
reference's mask `ids != (pad or eos)` falls back to EOS. Byte-level BPE trained offline on the bundled corpus, as
nexus.models.tiny does for the other tiny tokenizers (deterministic: same corpus, same vocabulary).
"""
from __future__ import annotations

from pathlib import Path

import torch

from nexus.models.tiny import CORPUS

VOCAB = 320
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
SPECIALS = [BOS, EOS, "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
LLAMA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=False,
             rope_parameters={"rope_type": "default", "rope_theta": 5e5})


def tiny_llama3_tokenizer(corpus: Path = CORPUS, vocab: int = VOCAB):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())              # byte-level: every byte is in the vocabulary, no unk (as Llama-3)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(corpus)], trainer)
    bos = tok.token_to_id(BOS)
    # Llama-3 prepends its BOS to every encoding, even to a text that already starts with one (the VILA trap)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS}:1 $B:1",
                                                       special_tokens=[(BOS, bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                   additional_special_tokens=SPECIALS[2:])


def write_tiny_llama3(folder: str | Path, seed: int = 0) -> str:
    """Write a tiny LlamaForCausalLM + Llama-3-style tokenizer into `folder` (created), deterministically."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = tiny_llama3_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=None, **LLAMA)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)
