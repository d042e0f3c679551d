"""Key names between Wan's original layout and the classes nexus runs: the renaming templates (Renames), the tables
for the transformer, the VAE and T5 <-> UMT5, and the functions that apply them (nexus.convert.wan loads and saves
the weights). Original -> diffusers goes through diffusers' own converters, applied to the key names alone;
diffusers -> original through the explicit tables here, checked on the key set at hand to be their exact inverse."""
from __future__ import annotations

import re


class WeightsError(ValueError):
    """A weights file cannot be read, or holds a key that is missing, unexpected or misshapen."""


# ---- renaming tables -------------------------------------------------------------------------------------------
_RESIDUAL = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
             "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
             "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}   # WanVAE ResidualBlock
_FIELDS = {"n": r"\d+", "m": r"\d+", "p": "weight|bias", "qkv": "q|k|v", "qk": "q|k", "qkvo": "q|k|v|o",
           "e": "encoder|decoder", "res": "|".join(map(re.escape, _RESIDUAL)),
           "rs": r"resample\.1\.(?:weight|bias)|time_conv\.(?:weight|bias)",
           "att": r"norm\.gamma|to_qkv\.(?:weight|bias)|proj\.(?:weight|bias)"}


class Renames:
    """Whole-key templates, the first that matches wins:
    "blocks.{n}.attn1.to_{qkv}.{p}" -> "blocks.{n}.self_attn.{qkv}.{p}" ({field}s as in _FIELDS; a target may
    instead be a function of the matched fields). Unmatched: None."""

    def __init__(self, pairs):
        self.rules = [(re.compile(self._regex(src)), dst) for src, dst in pairs]

    @staticmethod
    def _regex(template: str) -> str:
        parts = re.split(r"\{(\w+)\}", template)
        return "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_FIELDS[p]})" for i, p in enumerate(parts))

    def __call__(self, key: str) -> str | None:
        for rx, dst in self.rules:
            m = rx.fullmatch(key)
            if m:
                return dst(m.groupdict()) if callable(dst) else dst.format(**m.groupdict())
        return None


TRANSFORMER_TO_ORIGINAL = Renames([
    ("patch_embedding.{p}", "patch_embedding.{p}"),
    ("condition_embedder.time_embedder.linear_1.{p}", "time_embedding.0.{p}"),
    ("condition_embedder.time_embedder.linear_2.{p}", "time_embedding.2.{p}"),
    ("condition_embedder.time_proj.{p}", "time_projection.1.{p}"),
    ("condition_embedder.text_embedder.linear_1.{p}", "text_embedding.0.{p}"),
    ("condition_embedder.text_embedder.linear_2.{p}", "text_embedding.2.{p}"),
    ("blocks.{n}.scale_shift_table", "blocks.{n}.modulation"),
    ("blocks.{n}.attn1.to_{qkv}.{p}", "blocks.{n}.self_attn.{qkv}.{p}"),
    ("blocks.{n}.attn1.to_out.0.{p}", "blocks.{n}.self_attn.o.{p}"),
    ("blocks.{n}.attn1.norm_{qk}.weight", "blocks.{n}.self_attn.norm_{qk}.weight"),
    ("blocks.{n}.attn2.to_{qkv}.{p}", "blocks.{n}.cross_attn.{qkv}.{p}"),
    ("blocks.{n}.attn2.to_out.0.{p}", "blocks.{n}.cross_attn.o.{p}"),
    ("blocks.{n}.attn2.norm_{qk}.weight", "blocks.{n}.cross_attn.norm_{qk}.weight"),
    ("blocks.{n}.norm2.{p}", "blocks.{n}.norm3.{p}"),     # the affine cross-attention norm: Wan calls it norm3
    ("blocks.{n}.ffn.net.0.proj.{p}", "blocks.{n}.ffn.0.{p}"),
    ("blocks.{n}.ffn.net.2.{p}", "blocks.{n}.ffn.2.{p}"),
    ("scale_shift_table", "head.modulation"),
    ("proj_out.{p}", "head.head.{p}"),
])

# diffusers' VAE converter assumes num_res_blocks=2 and 4 levels: per decoder level 3 residual blocks + 1 resample
_UP = 4
VAE_TO_ORIGINAL = Renames([
    ("{e}.conv_in.{p}", "{e}.conv1.{p}"),
    ("{e}.norm_out.gamma", "{e}.head.0.gamma"),
    ("{e}.conv_out.{p}", "{e}.head.2.{p}"),
    ("quant_conv.{p}", "conv1.{p}"),
    ("post_quant_conv.{p}", "conv2.{p}"),
    ("{e}.mid_block.resnets.{n}.{res}", lambda g: f"{g['e']}.middle.{2 * int(g['n'])}.{_RESIDUAL[g['res']]}"),
    ("{e}.mid_block.attentions.0.{att}", "{e}.middle.1.{att}"),
    ("encoder.down_blocks.{n}.{res}", lambda g: f"encoder.downsamples.{g['n']}.{_RESIDUAL[g['res']]}"),
    ("encoder.down_blocks.{n}.{rs}", "encoder.downsamples.{n}.{rs}"),
    ("decoder.up_blocks.{n}.resnets.{m}.{res}",
     lambda g: f"decoder.upsamples.{_UP * int(g['n']) + int(g['m'])}.{_RESIDUAL[g['res']]}"),
    ("decoder.up_blocks.{n}.upsamplers.0.{rs}", lambda g: f"decoder.upsamples.{_UP * int(g['n']) + 3}.{g['rs']}"),
])

# Wan's T5Encoder (t5.py) <-> transformers' UMT5EncoderModel, one table both ways
_T5_PAIRS = [
    ("token_embedding.weight", "shared.weight"),
    ("blocks.{n}.norm1.weight", "encoder.block.{n}.layer.0.layer_norm.weight"),
    ("blocks.{n}.attn.{qkvo}.weight", "encoder.block.{n}.layer.0.SelfAttention.{qkvo}.weight"),
    ("blocks.{n}.pos_embedding.embedding.weight",
     "encoder.block.{n}.layer.0.SelfAttention.relative_attention_bias.weight"),
    ("blocks.{n}.norm2.weight", "encoder.block.{n}.layer.1.layer_norm.weight"),
    ("blocks.{n}.ffn.gate.0.weight", "encoder.block.{n}.layer.1.DenseReluDense.wi_0.weight"),   # fc1(x) * gelu(gate(x))
    ("blocks.{n}.ffn.fc1.weight", "encoder.block.{n}.layer.1.DenseReluDense.wi_1.weight"),
    ("blocks.{n}.ffn.fc2.weight", "encoder.block.{n}.layer.1.DenseReluDense.wo.weight"),
    ("norm.weight", "encoder.final_layer_norm.weight"),
]
T5_TO_UMT5, UMT5_TO_T5 = Renames(_T5_PAIRS), Renames([(b, a) for a, b in _T5_PAIRS])
UMT5_TIED = "encoder.embed_tokens.weight"      # transformers ties it to shared.weight; Wan has one token_embedding


def _check_names(names: dict[str, str], what: str) -> dict[str, str]:
    """names (source -> target) must not send two keys to one."""
    seen: dict[str, str] = {}
    clashes = [f"{a} and {seen[t]} -> {t}" for a, t in names.items() if seen.setdefault(t, a) != a]
    if clashes:
        raise WeightsError(f"{what}: keys that rename to the same key: {'; '.join(clashes[:5])}")
    return names


def transformer_to_diffusers(original_keys) -> dict[str, str]:
    """original key -> diffusers key, by diffusers' converter run on the names (it mutates its input: a fresh dict)."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    keys = list(original_keys)
    odd = [k for k in keys if "motion_encoder" in k or "face_adapter" in k]   # Wan-Animate, not a text-to-video model
    if odd:
        raise WeightsError(f"keys of another Wan model ({odd[0]} ...): only text-to-video WanModel weights convert")
    out = convert_wan_transformer_to_diffusers({k: k for k in keys})
    return _check_names({orig: new for new, orig in out.items()}, "the transformer")


def vae_to_diffusers(original_keys) -> dict[str, str]:
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
    out = convert_wan_vae_to_diffusers({k: k for k in original_keys})
    return _check_names({orig: new for new, orig in out.items()}, "the VAE")


def _inverse(keys, table: Renames, forward, what: str) -> dict[str, str]:
    """key -> original key by `table`, refused unless forward(table(k)) == k for every key (the exact inverse)."""
    keys = list(keys)
    back = {k: table(k) for k in keys}
    unplaced = [k for k, o in back.items() if o is None]
    if unplaced:
        raise WeightsError(f"{what}: keys with no place in the original layout: {unplaced[:5]}")
    fwd = forward(list(back.values()))
    wrong = [f"{k} -> {o} -> {fwd.get(o)}" for k, o in back.items() if fwd.get(o) != k]
    if wrong:
        raise WeightsError(f"{what}: the original names would not convert back (diffusers' converter reads only "
                           f"the structure of Wan2.1's own weights): {wrong[:5]}")
    return back


def transformer_to_original(diffusers_keys) -> dict[str, str]:
    return _inverse(diffusers_keys, TRANSFORMER_TO_ORIGINAL, transformer_to_diffusers, "the transformer")


def vae_to_original(diffusers_keys) -> dict[str, str]:
    return _inverse(diffusers_keys, VAE_TO_ORIGINAL, vae_to_diffusers, "the VAE")


def t5_to_umt5(original_keys) -> dict[str, str]:
    return _check_names({k: T5_TO_UMT5(k) or k for k in original_keys}, "the T5 encoder")   # unknown: unexpected


def umt5_to_t5(umt5_keys) -> dict[str, str]:
    return _inverse([k for k in umt5_keys if k != UMT5_TIED], UMT5_TO_T5, t5_to_umt5, "the UMT5 encoder")
