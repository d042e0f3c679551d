"""The shapes lab's networks in the real folder layouts, and the trainings that are not a generator's (the
generators train through tools/fit.py): the VAE and the understanding model.

Capacities: the small generator (4 layers, 128-d, 0.96M parameters) and the large one (6 layers, 160-d, 2.1M)
share the VAE (Wan's architecture, 16 latent channels, 8x down) and the UMT5 text encoder (random and frozen,
as Wan's is frozen), so they share one latent space, as Wan2.1-1.3B and -14B do. The understanding model is
the Qwen2.5-VL architecture (its language stack trained here, 4 layers, 128-d).
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nexus.lab.world import ATTRIBUTES, all_scenes, plain_caption, reasoning_caption, render
from nexus.models.tiny import SPECIALS, VLM_VISION, _tokenizer, ensure_folder
from nexus.models.understanding import INSTRUCTION

VOCAB = 512
UMT5 = dict(vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
            relative_attention_num_buckets=16, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
VAE = dict(base_dim=16, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, scale_factor_spatial=8,
           scale_factor_temporal=4)
# a 2-layer 64-d small generator never followed plain captions here (plain score 27-39%, most samples broken,
# with 1,500 or 3,000 steps, lr 1e-3 or 3e-3); the 4-layer 128-d one does (docs/lab.md)
SMALL = dict(patch_size=(1, 2, 2), num_attention_heads=8, attention_head_dim=16, in_channels=16, out_channels=16,
             text_dim=64, freq_dim=64, ffn_dim=256, num_layers=4, rope_max_seq_len=32)
LARGE = dict(SMALL, num_attention_heads=10, num_layers=6, ffn_dim=320)
VLM_TEXT = dict(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=512,
                rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [4, 6, 6]})   # head_dim / 2


def corpus(scenes) -> list[str]:
    return [INSTRUCTION.format(prompt="")] + [plain_caption(s) for s in scenes] + [
        reasoning_caption(s, a) for s in scenes for a in ATTRIBUTES]


def tokenizer(pad: str, eos: str, t5_style: bool, scenes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        path.write_text("\n".join(corpus(scenes)) + "\n")
        return _tokenizer(pad, eos, t5_style, corpus=path, vocab=VOCAB)


def build_text(out: Path, scenes, seed: int = 0) -> str:
    """out/{tokenizer, text_encoder}: a BPE tokenizer over the lab's words and a random UMT5 (frozen everywhere)."""
    def build(tmp: Path) -> None:
        from transformers import UMT5Config, UMT5EncoderModel
        tokenizer("<pad>", "</s>", True, scenes).save_pretrained(tmp / "tokenizer")
        UMT5EncoderModel(UMT5Config(**UMT5)).save_pretrained(tmp / "text_encoder")
    return ensure_folder(Path(out), build, seed)


def build_wan(out: Path, transformer: dict, vae: Path, text: Path, seed: int = 0) -> str:
    """A Wan folder in the diffusers layout: a freshly initialised transformer, the lab's VAE and text parts."""
    def build(tmp: Path) -> None:
        from diffusers import WanTransformer3DModel
        WanTransformer3DModel(**transformer).save_pretrained(tmp / "transformer")
        shutil.copytree(vae, tmp / "vae")
        for part in ("tokenizer", "text_encoder"):
            shutil.copytree(Path(text) / part, tmp / part)
    return ensure_folder(Path(out), build, seed)


# ---- the VAE --------------------------------------------------------------------------------------------------

def renders(scenes, n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """n jittered renders of random scenes -> (n, 3, 1, size, size) in [-1, 1]."""
    imgs = np.stack([render(scenes[i], size, rng) for i in rng.integers(len(scenes), size=n)])
    return torch.from_numpy(imgs).permute(0, 3, 1, 2)[:, :, None].float() / 127.5 - 1


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio of images in [-1, 1] (peak-to-peak 2)."""
    return float(10 * torch.log10(4 / (a - b).pow(2).mean()))


def train_vae(out: Path, scenes, test_scenes, steps: int, batch: int = 8, size: int = 64, lr: float = 1.5e-4,
              latent_l2: float = 1e-4, seed: int = 0, log=print) -> dict:
    """Train the Wan VAE architecture on renders as an autoencoder on the posterior mode (the codec encodes with
    the mode; L1 + MSE + a small L2 on the latents to keep them bounded), then record the latents' per-channel
    mean and std in its config (diffusers pipelines normalise with them, as for the real Wan VAE) and save it.
    -> {"psnr": held-out PSNR, "steps", "seconds"}."""
    from diffusers import AutoencoderKLWan
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vae = AutoencoderKLWan(**VAE)
    # lr 3e-4 diverges within 150 steps on this architecture, 1e-4 does not (measured): warm up, clip, decay
    opt = torch.optim.Adam(vae.parameters(), lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 100) * 0.5 * (1 + math.cos(math.pi * i / steps)))
    start = time.time()
    for step in range(steps):
        x = renders(scenes, batch, size, rng)
        z = vae.encode(x).latent_dist.mode()      # deterministic, as nexus.models.codec encodes
        recon = vae.decode(z).sample
        loss = (recon - x).abs().mean() + (recon - x).pow(2).mean() + latent_l2 * z.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, steps // 20) == 0 or step == steps - 1:
            log(f"vae step {step + 1}/{steps}: loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    vae.eval()
    with torch.no_grad():
        x = renders(scenes, 64, size, np.random.default_rng(seed + 1))
        z = vae.encode(x).latent_dist.mode()
        mean, std = z.mean((0, 2, 3, 4)), z.std((0, 2, 3, 4))
        held = torch.from_numpy(np.stack([render(s, size) for s in test_scenes])).permute(0, 3, 1, 2)[:, :, None]
        held = held.float() / 127.5 - 1
        quality = psnr(vae.decode(vae.encode(held).latent_dist.mode()).sample.clamp(-1, 1), held)
    vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(out).parent) as tmp:
        vae.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(tmp, out)
    info = {"psnr": quality, "steps": steps, "seconds": time.time() - start}
    (Path(out) / "lab.json").write_text(json.dumps(info, indent=1))
    return info


# ---- the understanding model ----------------------------------------------------------------------------------

def understanding_pairs(scenes) -> list[tuple[str, str]]:
    """(caption, what it means): every caption of the training scenes, plain and reasoning, with its plain form.
    Rewriting a caption into its plain form makes the model's hidden states over the caption carry the attributes
    (they must, to predict the rewrite): the knowledge the reasoning captions need."""
    return [(c, plain_caption(s)) for s in scenes for c in [plain_caption(s)] + [reasoning_caption(s, a)
                                                                                   for a in ATTRIBUTES]]


def build_vlm(out: Path, scenes, seed: int = 0) -> str:
    """A Qwen2.5-VL folder (random weights) with the lab's tokenizer and a small image preprocessor."""
    def build(tmp: Path) -> None:
        from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil)
        tok = tokenizer("<|endoftext|>", "<|im_end|>", False, scenes)
        ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
        text = dict(VLM_TEXT, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                    pad_token_id=ids["<|endoftext|>"])
        cfg = Qwen2_5_VLConfig(text_config=text, vision_config=dict(VLM_VISION, out_hidden_size=VLM_TEXT["hidden_size"]),
                               image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                               vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                               tie_word_embeddings=False)
        Qwen2_5_VLForConditionalGeneration(cfg).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        Qwen2VLImageProcessorPil(patch_size=VLM_VISION["patch_size"], merge_size=VLM_VISION["spatial_merge_size"],
                                 temporal_patch_size=VLM_VISION["temporal_patch_size"], min_pixels=28 * 28,
                                 max_pixels=56 * 56).save_pretrained(tmp)
    return ensure_folder(Path(out), build, seed)


def _lm_batch(tok, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Chat-formatted prompt (as nexus.models.understanding builds it) + the answer; loss on the answer only."""
    from nexus.models.understanding import vlm_texts
    prompts = vlm_texts(tok, [c for c, _ in pairs])
    rows, labels = [], []
    for prompt, (_, answer) in zip(prompts, pairs):
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        a = tok(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        rows.append(p + a)
        labels.append([-100] * len(p) + a)
    width = max(map(len, rows))
    pad = tok.pad_token_id
    return {"input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
            "labels": torch.tensor([r + [-100] * (width - len(r)) for r in labels])}


def train_vlm(folder: Path, scenes, test_scenes, steps: int, batch: int = 32, lr: float = 2e-3, seed: int = 0,
              log=print) -> dict:
    """Teach the understanding model what every training caption means (`understanding_pairs`), in place; then
    measure on the held-out scenes how often its greedy rewrite of a caption is exactly the plain caption.
    -> {"rewrite_accuracy": {"plain": ..., "reasoning": ...}, "steps", "seconds"}."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    model.train()
    pairs = understanding_pairs(scenes)
    opt = torch.optim.AdamW([p for n, p in model.named_parameters() if "visual" not in n], lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 50) * 0.5 * (1 + math.cos(math.pi * i / steps)))
    start = time.time()
    for step in range(steps):
        loss = model(**_lm_batch(tok, [pairs[i] for i in rng.integers(len(pairs), size=batch)])).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            log(f"understanding step {step + 1}/{steps}: loss {loss.item():.4f}")
    model.eval()
    accuracy = rewrite_accuracy(model, tok, test_scenes)
    with tempfile.TemporaryDirectory(dir=Path(folder).parent) as tmp:
        model.save_pretrained(tmp)
        for f in Path(tmp).iterdir():
            shutil.copy2(f, Path(folder) / f.name)
    info = {"rewrite_accuracy": accuracy, "steps": steps, "seconds": time.time() - start}
    (Path(folder) / "lab.json").write_text(json.dumps(info, indent=1))
    return info


@torch.no_grad()
def rewrite_accuracy(model, tok, scenes) -> dict[str, float]:
    """Share of captions whose greedy rewrite is exactly the plain caption, for plain and for reasoning captions."""
    from nexus.models.understanding import vlm_texts
    out = {}
    for kind, pairs in (("plain", [(plain_caption(s), plain_caption(s)) for s in scenes]),
                        ("reasoning", [(reasoning_caption(s, a), plain_caption(s)) for s in scenes for a in ATTRIBUTES])):
        t = tok(vlm_texts(tok, [c for c, _ in pairs]), padding=True, padding_side="left", return_tensors="pt")
        gen = model.generate(**t, max_new_tokens=24, do_sample=False)
        said = tok.batch_decode(gen[:, t.input_ids.shape[1]:], skip_special_tokens=True)
        out[kind] = float(np.mean([s.strip() == want for s, (_, want) in zip(said, pairs)]))
    return out
