"""Tiny random models in the real folder layouts, so the `tiny` recipe and the tests load them through the
very code that loads Wan2.1 and Qwen-VL (nothing is downloaded, nothing is mocked).

`ensure_tiny_models(root)` writes, once and deterministically:
  root/wan/{transformer,vae,text_encoder,tokenizer}   diffusers layout (tiny Wan transformer, VAE, UMT5)
  root/vlm/                                           transformers layout (tiny Qwen2.5-VL + tokenizer)
  root/wan_large/                                     a bigger tiny transformer sharing wan's VAE and UMT5
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

VOCAB = 320
SPECIALS = ["<pad>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
            "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
CORPUS = Path(__file__).resolve().parents[2] / "data" / "tiny" / "corpus.txt"
# Qwen-VL's turn format; a content list may hold images (the VR-Bench judge), a plain string renders as before
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
                 "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}"
                 "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
                 "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
                   out_channels=16, text_dim=32, freq_dim=32, ffn_dim=32, num_layers=2, rope_max_seq_len=32)
TRANSFORMER_LARGE = dict(TRANSFORMER, num_attention_heads=4, num_layers=3, ffn_dim=64)
VAE = dict(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, scale_factor_spatial=8,
           scale_factor_temporal=4)
UMT5 = dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
VLM_TEXT = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]})
VLM_VISION = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                  fullatt_block_indexes=[0], window_size=28, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2)


def _tokenizer(pad: str, eos: str, t5_style: bool, corpus: Path = CORPUS, vocab: int = VOCAB):
    """A byte-level BPE tokenizer trained offline on a corpus (default: the bundled one; deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(corpus)], trainer)
    if t5_style:   # T5 appends </s> to every sequence
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, eos_token=eos, unk_token="<unk>")
    if not t5_style:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def _build_wan(out: Path) -> None:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    WanTransformer3DModel(**TRANSFORMER).save_pretrained(out / "transformer")
    AutoencoderKLWan(**VAE).save_pretrained(out / "vae")
    UMT5EncoderModel(UMT5Config(**UMT5)).save_pretrained(out / "text_encoder")
    _tokenizer("<pad>", "</s>", t5_style=True).save_pretrained(out / "tokenizer")


def _build_vlm(out: Path) -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    tok = _tokenizer("<|endoftext|>", "<|im_end|>", t5_style=False)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    text = dict(VLM_TEXT, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"])
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=VLM_VISION, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)
    Qwen2_5_VLForConditionalGeneration(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    # the image preprocessor (PIL backend: no torchvision needed), sized so a 32x32 frame is a single token
    Qwen2VLImageProcessorPil(patch_size=VLM_VISION["patch_size"], merge_size=VLM_VISION["spatial_merge_size"],
                             temporal_patch_size=VLM_VISION["temporal_patch_size"],
                             min_pixels=28 * 28, max_pixels=56 * 56).save_pretrained(out)


def _build_wan_large(out: Path) -> None:
    """A bigger tiny generator in the same latent space: its own transformer, the small one's VAE/UMT5."""
    from diffusers import WanTransformer3DModel
    WanTransformer3DModel(**TRANSFORMER_LARGE).save_pretrained(out / "transformer")
    small = out.parent / "wan"     # out is a temporary folder beside it
    for part in ("vae", "text_encoder", "tokenizer"):
        shutil.copytree(small / part, out / part)


def ensure_folder(final: Path, build, seed: int = 0, marker: str | None = None) -> str:
    """Build `final` once, deterministically, through a temporary sibling renamed into place (atomic). A folder
    built by an older version (without `marker`) is rebuilt: same seed, same weights."""
    if marker and final.is_dir() and not (final / marker).exists():
        shutil.rmtree(final, ignore_errors=True)
    if not final.is_dir():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging
        for lib in (diffusers_logging, transformers_logging):
            lib.disable_progress_bar()                 # "Writing model shards" bars for a few KB
        try:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                build(tmp)
        finally:
            for lib in (diffusers_logging, transformers_logging):
                lib.enable_progress_bar()
        try:   # another rank may have finished first: keep theirs
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(final)


def ensure_tiny_models(root: str | Path, seed: int = 0) -> dict[str, str]:
    """Build the tiny folders under `root` if absent; return {"wan": ..., "vlm": ..., "wan_large": ...}."""
    root = Path(root)
    return {name: ensure_folder(root / name, build, seed, marker)
            for name, build, marker in (("wan", _build_wan, None), ("vlm", _build_vlm, "preprocessor_config.json"),
                                        ("wan_large", _build_wan_large, None))}
