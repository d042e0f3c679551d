"""Wan2.1 folders in the original layout (nexus.convert.wan): the converted transformer and T5 against forwards
written here from Wan's math, hand-written key pairs, exact round trips, strict refusals naming file and key, and
the loaders / checks / memory plan that accept such a folder (a tiny one from nexus.convert.tiny_wan)."""
import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from nexus.convert import wan, wan_keys
from nexus.convert.tiny_wan import write_tiny_original_wan


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """Tiny original-layout folders: one file, sharded (same seed: same tensors), and one with another VAE."""
    root = tmp_path_factory.mktemp("original_wan")
    return {"single": write_tiny_original_wan(root / "single", sharded=False, seed=0),
            "sharded": write_tiny_original_wan(root / "sharded", sharded=True, seed=0),
            "other_vae": write_tiny_original_wan(root / "other_vae", seed=1,
                                                 vae={"temperal_downsample": [False, False, True]})}


def folder_state(folder):
    """Every tensor of an original folder's transformer files."""
    files = sorted(folder.glob("diffusion_pytorch_model*.safetensors"))
    return {k: v for f in files for k, v in load_file(str(f)).items()}


def randomized(state, seed=0, std=0.2):
    """Same keys and shapes, every tensor random (norm weights around 1), so that no key can be swapped unnoticed."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * std + (1.0 if "norm" in k and k.endswith("weight") else 0.0)
            for k, v in state.items()}


# ---- an independent Wan2.1 T2V forward on original keys (model.py's math) -----------------------------------------
def wan_forward(sd, cfg, x, t, context):
    """x (B, C, F, H, W), t (B,), context (B, text_len, text_dim) zero-padded -> (B, C, F, H, W); fp32."""
    dim, heads, eps = cfg["dim"], cfg["num_heads"], cfg["eps"]
    d, patch = dim // heads, tuple(sd["patch_embedding.weight"].shape[2:])

    def lin(v, name):
        return F.linear(v, sd[name + ".weight"], sd[name + ".bias"])

    def ln(v, name=None):       # LayerNorm; affine only for norm3
        return F.layer_norm(v, (dim,), sd.get(f"{name}.weight"), sd.get(f"{name}.bias"), eps)

    def rms(v, name):           # RMS norm over all heads' channels
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + eps) * sd[name + ".weight"]

    def attention(q, k, v):     # (B, L, n, d), softmax(q k^T / sqrt(d)) v, nothing masked
        w = torch.softmax(torch.einsum("bind,bjnd->bnij", q, k) / math.sqrt(d), dim=-1)
        return torch.einsum("bnij,bjnd->bind", w, v).flatten(2)

    h = F.conv3d(x, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=patch)
    B, _, f, hh, ww = h.shape
    h = h.flatten(2).transpose(1, 2)
    L = h.shape[1]
    half = cfg["freq_dim"] // 2
    sinus = torch.outer(t.double(), torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half))
    e = lin(F.silu(lin(torch.cat([sinus.cos(), sinus.sin()], 1).float(), "time_embedding.0")), "time_embedding.2")
    e0 = lin(F.silu(e), "time_projection.1").unflatten(1, (6, dim))
    ctx = lin(F.gelu(lin(context, "text_embedding.0"), approximate="tanh"), "text_embedding.2")

    # 3-D RoPE: a head's d/2 channel pairs split [c - 2(c//3), c//3, c//3] over (frame, row, column)
    c = d // 2
    grid = torch.stack(torch.meshgrid(torch.arange(f), torch.arange(hh), torch.arange(ww), indexing="ij"), -1)
    grid = grid.reshape(L, 3)
    angles = []
    for axis, m in enumerate([c - 2 * (c // 3), c // 3, c // 3]):
        inv = 1.0 / 10000.0 ** (torch.arange(m, dtype=torch.float64) * 2 / (2 * m))
        angles.append(grid[:, axis, None].double() * inv)
    rot = torch.polar(torch.ones(L, c, dtype=torch.float64), torch.cat(angles, 1))

    def rope(v):
        z = torch.view_as_complex(v.double().reshape(B, L, heads, c, 2))
        return torch.view_as_real(z * rot[None, :, None]).flatten(3).float()

    for i in range(cfg["num_layers"]):
        p = f"blocks.{i}."
        mod = (sd[p + "modulation"] + e0).chunk(6, dim=1)          # shift, scale, gate (attn); shift, scale, gate (ffn)
        y = ln(h) * (1 + mod[1]) + mod[0]
        q = rms(lin(y, p + "self_attn.q"), p + "self_attn.norm_q").view(B, L, heads, d)
        k = rms(lin(y, p + "self_attn.k"), p + "self_attn.norm_k").view(B, L, heads, d)
        v = lin(y, p + "self_attn.v").view(B, L, heads, d)
        h = h + lin(attention(rope(q), rope(k), v), p + "self_attn.o") * mod[2]
        y = ln(h, p + "norm3")
        q = rms(lin(y, p + "cross_attn.q"), p + "cross_attn.norm_q").view(B, L, heads, d)
        k = rms(lin(ctx, p + "cross_attn.k"), p + "cross_attn.norm_k").view(B, -1, heads, d)
        v = lin(ctx, p + "cross_attn.v").view(B, -1, heads, d)
        h = h + lin(attention(q, k, v), p + "cross_attn.o")
        y = ln(h) * (1 + mod[4]) + mod[3]
        h = h + lin(F.gelu(lin(y, p + "ffn.0"), approximate="tanh"), p + "ffn.2") * mod[5]
    shift, scale = (sd["head.modulation"] + e[:, None]).chunk(2, dim=1)
    out = lin(ln(h) * (1 + scale) + shift, "head.head")
    C = cfg["out_dim"]
    out = out.view(B, f, hh, ww, *patch, C).permute(0, 7, 1, 4, 2, 5, 3, 6)     # unpatchify: 'fhwpqrc->cfphqwr'
    return out.reshape(B, C, f * patch[0], hh * patch[1], ww * patch[2])


def test_converted_transformer_matches_wans_math(originals, tmp_path):
    src = originals["single"]
    cfg = json.loads((src / "config.json").read_text())
    sd = randomized(folder_state(src))
    wan.save_original_transformer(sd, cfg, tmp_path / "w")
    shutil.copy(src / wan.VAE_FILE, tmp_path / "w")
    model = wan.load_original_transformer(tmp_path / "w", torch.float32)
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(2, 16, 3, 8, 8, generator=g), torch.tensor([999.0, 321.0])
    context = torch.zeros(2, cfg["text_len"], model.config.text_dim)          # Wan zero-pads to text_len ...
    for b, n in enumerate((5, 9)):
        context[b, :n] = torch.randn(n, model.config.text_dim, generator=g)
    with torch.no_grad():
        want = wan_forward(sd, cfg, x, t, context)                          # ... and attends to the padding
        got = model(x, t, context, return_dict=False)[0]
    assert want.shape == got.shape == x.shape
    # fp32 on both sides (outputs up to ~6). Wan computes the sinusoid of t in float64, diffusers in fp32: at t=999
    # the angle t * freq is off by ~6e-5 rad, which gives the largest difference (2.7e-5 measured; 3e-6 for t <= 20,
    # the rest being the order of fp32 operations). Hence atol 1e-4; a misplaced tensor moves outputs by > 1e-2.
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), (got - want).abs().max()
    wrong = dict(sd, **{"blocks.1.norm3.weight": torch.ones_like(sd["blocks.1.norm3.weight"])})
    with torch.no_grad():
        assert (wan_forward(wrong, cfg, x, t, context) - got).abs().max() > 1e-2         # the test can tell


# ---- T5: Wan's T5Encoder math vs the converted UMT5EncoderModel --------------------------------------------------
def t5_forward(sd, ids, mask, heads, buckets, max_dist=128, eps=1e-6):
    """t5.py: RMS norm (no mean), per-block relative position bias (bidirectional buckets), attention logits not
    scaled, gated tanh-GELU feed-forward fc2(fc1(x) * gelu(gate(x))), final norm; masked keys never attended."""
    x = sd["token_embedding.weight"][ids]
    B, L = ids.shape
    rel = torch.arange(L)[None, :] - torch.arange(L)[:, None]                # key - query
    nb = buckets // 2
    exact = nb // 2
    a = rel.abs()
    large = exact + (torch.log(a.float().clamp(min=1) / exact) / math.log(max_dist / exact) * (nb - exact)).long()
    bucket = (rel > 0).long() * nb + torch.where(a < exact, a, large.clamp(max=nb - 1))

    def rms(v, name):
        return sd[name] * v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + eps)

    def gelu(v):
        return 0.5 * v * (1 + torch.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))

    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(layers):
        p = f"blocks.{i}."
        y = rms(x, p + "norm1.weight")
        q, k, v = (F.linear(y, sd[p + f"attn.{n}.weight"]).view(B, L, heads, -1) for n in "qkv")
        bias = sd[p + "pos_embedding.embedding.weight"][bucket].permute(2, 0, 1)     # (heads, Lq, Lk)
        logits = torch.einsum("binc,bjnc->bnij", q, k) + bias
        logits = logits.masked_fill(mask[:, None, None, :] == 0, torch.finfo(x.dtype).min)
        att = torch.einsum("bnij,bjnc->binc", torch.softmax(logits, -1), v).flatten(2)
        x = x + F.linear(att, sd[p + "attn.o.weight"])
        y = rms(x, p + "norm2.weight")
        x = x + F.linear(F.linear(y, sd[p + "ffn.fc1.weight"]) * gelu(F.linear(y, sd[p + "ffn.gate.0.weight"])),
                         sd[p + "ffn.fc2.weight"])
    return rms(x, "norm.weight")


def test_converted_t5_matches_wans_math(originals, tmp_path):
    folder = shutil.copytree(originals["single"], tmp_path / "w")
    sd = randomized(torch.load(folder / wan.T5_FILE, weights_only=True), seed=2, std=0.3)
    torch.save(sd, folder / wan.T5_FILE)                                    # fp32, for a tight comparison
    model = wan.load_original_umt5(folder, torch.float32)
    cfg = model.config
    ids = torch.randint(3, cfg.vocab_size, (2, 12), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 7:] = 0                                                         # a shorter prompt, padded
    with torch.no_grad():
        want = t5_forward(sd, ids, mask, cfg.num_heads, cfg.relative_attention_num_buckets)
        got = model(input_ids=ids, attention_mask=mask).last_hidden_state
    # distances up to 11 reach both the exact and the logarithmic buckets (8 buckets: 2 exact per direction)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (got - want).abs().max()


# ---- keys --------------------------------------------------------------------------------------------------------
def test_hand_written_key_pairs():
    pairs = {"blocks.0.norm3.weight": "blocks.0.norm2.weight", "head.modulation": "scale_shift_table",
             "blocks.1.ffn.0.bias": "blocks.1.ffn.net.0.proj.bias", "blocks.3.modulation": "blocks.3.scale_shift_table",
             "head.head.weight": "proj_out.weight", "time_projection.1.bias": "condition_embedder.time_proj.bias",
             "text_embedding.2.weight": "condition_embedder.text_embedder.linear_2.weight",
             "blocks.2.cross_attn.o.weight": "blocks.2.attn2.to_out.0.weight",
             "blocks.0.self_attn.norm_k.weight": "blocks.0.attn1.norm_k.weight"}
    assert wan_keys.transformer_to_diffusers(pairs) == pairs
    assert wan_keys.transformer_to_original(pairs.values()) == {v: k for k, v in pairs.items()}
    vae = {"decoder.upsamples.4.shortcut.weight": "decoder.up_blocks.1.resnets.0.conv_shortcut.weight",
           "decoder.upsamples.11.resample.1.bias": "decoder.up_blocks.2.upsamplers.0.resample.1.bias",
           "encoder.middle.2.residual.3.gamma": "encoder.mid_block.resnets.1.norm2.gamma",
           "conv1.weight": "quant_conv.weight", "encoder.head.2.bias": "encoder.conv_out.bias"}
    assert wan_keys.vae_to_diffusers(vae) == vae
    assert wan_keys.vae_to_original(vae.values()) == {v: k for k, v in vae.items()}
    t5 = {"blocks.5.ffn.gate.0.weight": "encoder.block.5.layer.1.DenseReluDense.wi_0.weight",
          "blocks.0.pos_embedding.embedding.weight":
              "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
          "token_embedding.weight": "shared.weight", "norm.weight": "encoder.final_layer_norm.weight"}
    assert wan_keys.t5_to_umt5(t5) == t5
    assert wan_keys.umt5_to_t5(t5.values()) == {v: k for k, v in t5.items()}


def test_inverse_tables_are_exact_on_full_key_sets():
    """forward(inverse(k)) == k for every key of the real-size models and the tiny ones (meta: no memory)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel
    from nexus.convert.tiny_wan import VAE
    from nexus.models.presets import PRESETS
    from nexus.models.tiny import TRANSFORMER, UMT5
    from nexus.plan.sizes import UMT5_XXL
    with torch.device("meta"):
        for model, inverse, forward in (
                *[(WanTransformer3DModel(**c), wan_keys.transformer_to_original, wan_keys.transformer_to_diffusers)
                  for c in (TRANSFORMER, *PRESETS.values())],
                *[(AutoencoderKLWan(**c), wan_keys.vae_to_original, wan_keys.vae_to_diffusers) for c in ({}, VAE)],
                *[(UMT5EncoderModel(UMT5Config(**c)), wan_keys.umt5_to_t5, wan_keys.t5_to_umt5) for c in (UMT5, UMT5_XXL)]):
            keys = [k for k in model.state_dict() if k != wan_keys.UMT5_TIED]
            back = inverse(keys)
            assert len(set(back.values())) == len(keys)
            assert {o: d for d, o in back.items()} == forward(back.values())


def test_a_vae_structure_diffusers_cannot_convert_is_refused():
    from diffusers import AutoencoderKLWan
    with torch.device("meta"):
        state = AutoencoderKLWan(base_dim=8, dim_mult=[1, 1, 1, 1]).state_dict()   # shortcuts at levels 2 and 3 too
    with pytest.raises(wan_keys.WeightsError, match="would not convert back"):
        wan_keys.vae_to_original(state)


# ---- configs -----------------------------------------------------------------------------------------------------
def test_configs_from_shapes_alone(originals):
    from nexus.models.tiny import TRANSFORMER, UMT5
    cfg = wan.transformer_config(originals["sharded"])               # config.json + the shards' headers
    assert cfg == dict(TRANSFORMER, patch_size=[1, 2, 2], cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                       eps=1e-6, rope_max_seq_len=1024)
    assert "text_dim" not in json.loads((originals["sharded"] / "config.json").read_text())
    shapes = wan.transformer_shapes(originals["sharded"])
    assert wan.diffusers_config(json.loads((originals["single"] / "config.json").read_text()), shapes) == cfg
    vae = wan.vae_folder_config(originals["single"])
    assert (vae["base_dim"], vae["z_dim"], vae["dim_mult"], vae["scale_factor_temporal"]) == (4, 16, [1, 2, 4, 4], 4)
    assert wan.vae_folder_config(originals["other_vae"])["scale_factor_temporal"] == 2
    t5 = wan.umt5_folder_config(originals["single"])
    assert {k: t5[k] for k in UMT5 if k in t5} == {k: v for k, v in UMT5.items() if k in t5}


def test_real_vae_config_is_diffusers_default():
    from diffusers import AutoencoderKLWan
    with torch.device("meta"):
        v = AutoencoderKLWan()
    state = {o: v.state_dict()[k] for k, o in wan_keys.vae_to_original(v.state_dict()).items()}
    assert wan.vae_config(state) == {k: v for k, v in v.config.items() if not k.startswith("_")}


# ---- round trips -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["single", "sharded"])
def test_transformer_round_trip_is_exact(originals, tmp_path, kind):
    src = originals[kind]
    model = wan.load_original_transformer(src, torch.float32)
    written = wan.save_original_transformer(model, None, tmp_path, shards=3 if kind == "sharded" else 1)
    before, after = folder_state(src), folder_state(tmp_path)
    assert sorted(before) == sorted(after) == sorted(written)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (src / "config.json").read_text() == (tmp_path / "config.json").read_text()
    if kind == "sharded":
        assert json.loads((src / wan.INDEX).read_text()) == json.loads((tmp_path / wan.INDEX).read_text())


def test_vae_and_t5_round_trips_are_exact(originals, tmp_path):
    src = originals["single"]
    vae = wan.load_original_vae(src)
    wan.save_original_vae(vae, tmp_path / wan.VAE_FILE)
    for dtype in (torch.bfloat16, torch.float32):           # the file's bf16 is exact in fp32 and back
        wan.save_original_t5(wan.load_original_umt5(src, dtype), tmp_path / wan.T5_FILE)
        for name in (wan.VAE_FILE, wan.T5_FILE):
            a, b = torch.load(src / name, weights_only=True), torch.load(tmp_path / name, weights_only=True)
            assert list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    assert torch.load(src / wan.T5_FILE, weights_only=True)["token_embedding.weight"].dtype == torch.bfloat16


def test_same_seed_same_tensors(originals):
    a, b = folder_state(originals["single"]), folder_state(originals["sharded"])
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_a_diffusers_folder_written_original_loads_back_like_from_pretrained(tiny_models, tmp_path):
    """diffusers -> original -> diffusers: the same tensors, in the dtypes from_pretrained gives (fp32 modules)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5EncoderModel
    from nexus.convert.tiny_wan import VAE
    src = shutil.copytree(tiny_models["wan"], tmp_path / "d", ignore=shutil.ignore_patterns("vae"))
    AutoencoderKLWan(**VAE).save_pretrained(src / "vae")     # (the tiny diffusers VAE has 1 residual block per level)
    written = wan.write_original_folder(src, tmp_path / "w", shards=2)
    assert (tmp_path / "w" / wan.INDEX).is_file() and "head.modulation" in written
    ref, got = AutoencoderKLWan.from_pretrained(src / "vae"), wan.load_original_vae(tmp_path / "w")
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), got.state_dict().values()))
    public = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}      # noqa: E731
    assert public(ref.config) == public(got.config)
    t5 = UMT5EncoderModel.from_pretrained(src / "text_encoder")
    for dtype in (torch.bfloat16, torch.float16):
        ref = WanTransformer3DModel.from_pretrained(src / "transformer", torch_dtype=dtype)
        got = wan.load_original_transformer(tmp_path / "w", dtype)
        for (n, a), (m, b) in zip([*ref.named_parameters(), *ref.named_buffers()],
                                  [*got.named_parameters(), *got.named_buffers()]):
            b = b[:len(a)] if n.startswith("rope.") else b    # Wan's table: 1024 positions (the tiny config: 32)
            assert n == m and a.dtype == b.dtype and torch.equal(a, b), n
        ref = UMT5EncoderModel.from_pretrained(src / "text_encoder", dtype=dtype)
        got = wan.load_original_umt5(tmp_path / "w", dtype)
        for (n, a), (m, b), c in zip(ref.named_parameters(), got.named_parameters(), t5.parameters()):
            # the dtypes from_pretrained gives (wo fp32 under fp16); the values the bf16 file holds
            assert n == m and a.dtype == b.dtype and torch.equal(b, c.bfloat16().to(b.dtype)), n
        assert got.shared.weight is got.encoder.embed_tokens.weight


# ---- refusals ----------------------------------------------------------------------------------------------------
def _edit(folder, key, change):
    """Apply `change` (state, key) to the safetensors file holding `key` (and keep the index in step); -> that file."""
    index = folder / wan.INDEX
    weight_map = json.loads(index.read_text())["weight_map"] if index.is_file() else None
    path = folder / (weight_map[key] if weight_map else wan.WEIGHTS)
    state = load_file(str(path))
    new_key = change(state, key)
    save_file(state, str(path))
    if weight_map:
        shard = weight_map.pop(key)
        if new_key:
            weight_map[new_key] = shard
        index.write_text(json.dumps({"weight_map": weight_map}))
    return path


def _rename(state, key):
    state[key + "_renamed"] = state.pop(key)
    return key + "_renamed"


def _drop(state, key):
    del state[key]


def _reshape(state, key):
    state[key] = state[key][:, :-1].contiguous()
    return key


@pytest.mark.parametrize("kind", ["single", "sharded"])
@pytest.mark.parametrize("change,key,says", [
    (_rename, "blocks.1.ffn.0.bias", ["unexpected key blocks.1.ffn.0.bias_renamed", "missing key blocks.1.ffn.0.bias"]),
    (_drop, "blocks.0.norm3.weight", ["missing key blocks.0.norm3.weight"]),
    (_reshape, "blocks.0.self_attn.q.weight", ["key blocks.0.self_attn.q.weight has shape (24, 23)"]),
])
def test_a_wrong_key_is_refused_naming_file_and_key(originals, tmp_path, kind, change, key, says):
    folder = shutil.copytree(originals[kind], tmp_path / "w")
    path = _edit(folder, key, change)
    with pytest.raises(wan.WeightsError) as e:
        wan.load_original_transformer(folder)
    message = str(e.value)
    for s in says:
        assert s in message
    where = path if change is not _drop else (folder / (wan.INDEX if kind == "sharded" else wan.WEIGHTS))
    assert str(where) in message


def test_a_shard_the_index_disagrees_with_is_refused(originals, tmp_path):
    folder = shutil.copytree(originals["sharded"], tmp_path / "w")
    weight_map = json.loads((folder / wan.INDEX).read_text())["weight_map"]
    path = folder / weight_map["head.head.weight"]
    state = load_file(str(path))
    state["head.head.weightx"] = state.pop("head.head.weight")
    save_file(state, str(path))                                    # the index still names head.head.weight there
    with pytest.raises(wan.WeightsError, match=f"{path}: key head.head.weightx .*{path}: no key head.head.weight"):
        wan.transformer_shapes(folder)


def test_a_missing_shard_is_refused_naming_it(originals, tmp_path):
    from nexus.models.loading import LayoutError, WAN_LAYOUT, check_folder, load_transformer
    folder = shutil.copytree(originals["sharded"], tmp_path / "w")
    (folder / "diffusion_pytorch_model-00002-of-00003.safetensors").unlink()
    for load in (lambda: load_transformer(folder), lambda: check_folder("paths.small", str(folder), WAN_LAYOUT)):
        with pytest.raises(LayoutError, match="missing diffusion_pytorch_model-00002-of-00003.safetensors"):
            load()
    with pytest.raises(wan.WeightsError, match="00002-of-00003.safetensors: missing from disk"):
        wan.transformer_shapes(folder)


@pytest.mark.parametrize("name,key", [(wan.VAE_FILE, "decoder.upsamples.4.shortcut.weight"),
                                      (wan.T5_FILE, "blocks.1.ffn.fc2.weight")])
def test_a_wrong_vae_or_t5_key_is_refused(originals, tmp_path, name, key):
    folder = shutil.copytree(originals["single"], tmp_path / "w")
    sd = torch.load(folder / name, weights_only=True)
    sd[key] = sd[key][:-1].clone()
    torch.save(sd, folder / name)
    load = wan.load_original_vae if name == wan.VAE_FILE else wan.load_original_umt5
    with pytest.raises(wan.WeightsError, match=f"{folder / name}: key {key} has shape"):
        load(folder)


# ---- the project's loaders, checks and plan ----------------------------------------------------------------------
def test_loaders_accept_an_original_folder(originals):
    from nexus.inference.launch import LARGE_LAYOUT
    from nexus.pipelines.parts import load_large
    from nexus.models import text
    from nexus.models.loading import WAN_LAYOUT, check_folder, load_transformer, load_umt5, load_vae
    folder = originals["sharded"]
    assert check_folder("paths.small", str(folder), WAN_LAYOUT) == folder
    assert check_folder("paths.large", str(folder), LARGE_LAYOUT) == folder
    ref = wan.load_original_transformer(originals["single"])
    for model in (load_transformer(folder), load_large(folder, torch.float32)[0]):
        assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), model.state_dict().values()))
    assert load_large(folder, torch.float32)[1] is None
    assert load_transformer(folder, random_init=True).config.text_dim == 32
    assert load_vae(folder).config.base_dim == 4
    tok, enc = load_umt5(folder)
    (feat,) = text.encode_umt5(tok, enc, ["a red ball rolls"])
    assert feat.shape[1] == 32 and torch.isfinite(feat).all()


def test_check_folder_names_what_an_original_folder_lacks(originals, tmp_path):
    from nexus.models.loading import LayoutError, WAN_LAYOUT, check_folder
    folder = shutil.copytree(originals["single"], tmp_path / "w")
    (folder / wan.VAE_FILE).unlink()
    with pytest.raises(LayoutError, match="original-layout Wan folder: missing Wan2.1_VAE.pth"):
        check_folder("paths.small", str(folder), WAN_LAYOUT)
    assert check_folder("paths.small", str(folder), WAN_LAYOUT, parts=("transformer", "text_encoder")) == folder
    with pytest.raises(LayoutError, match="original Wan layout"):           # a folder of neither layout
        check_folder("paths.small", str(tmp_path), WAN_LAYOUT)


def test_latent_space_check_across_layouts(originals, tiny_models):
    from nexus.models.latent_space import check_latent_space, latent_signature
    assert check_latent_space(tiny_models["wan"], originals["sharded"]) == []
    assert latent_signature(originals["single"]) == latent_signature(tiny_models["wan"])
    with pytest.raises(ValueError, match="vae.scale_factor_temporal: small 4 vs large 2"):
        check_latent_space(tiny_models["wan"], originals["other_vae"])


def test_memory_plan_reads_an_original_folder(originals):
    from diffusers import AutoencoderKLWan
    from nexus.plan import sizes
    folder = str(originals["sharded"])
    model = wan.load_original_transformer(folder)
    assert sizes.wan_config(folder, "wan2.1-t2v-1.3b") == (wan.transformer_config(folder), folder)
    assert sizes.wan_params(sizes.large_configs(folder, "wan2.1-t2v-14b")[0][0])[0] == sizes.count(model)
    assert sizes.umt5_params(folder)[0] == sizes.count(wan.load_original_umt5(folder))
    assert sizes.vae_params(folder)[0] == sizes.count(wan.load_original_vae(folder))
    assert AutoencoderKLWan.from_config(json.loads(sizes.part_config(folder, "vae"))).config.base_dim == 4
    assert json.loads(sizes.part_config(folder, "text_encoder"))["d_model"] == 32


# ---- real size, on a GPU -----------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_real_size_original_transformer_loads_on_cuda_in_bf16(tmp_path):
    """Wan2.1-T2V-1.3B's architecture, random weights in the original layout (2 shards): converted and loaded on
    CUDA in bf16, the right config, the tensors where they should be, a finite forward."""
    from diffusers import WanTransformer3DModel
    from nexus.models.presets import WAN_T2V_1_3B
    with torch.device("meta"):
        meta = WanTransformer3DModel(**WAN_T2V_1_3B).state_dict()
    names = wan_keys.transformer_to_original(meta)
    torch.manual_seed(0)
    state = {names[k]: (torch.randn(v.shape, device="cuda") * 0.02).bfloat16().cpu() for k, v in meta.items()}
    cfg = wan.original_config(WAN_T2V_1_3B)
    wan.save_original_transformer(state, cfg, tmp_path, shards=2)
    assert "text_dim" not in json.loads((tmp_path / "config.json").read_text())
    model = wan.load_original_transformer(tmp_path, torch.bfloat16, device="cuda")
    assert wan.transformer_config(tmp_path) == WAN_T2V_1_3B
    assert model.blocks[0].norm2.weight.dtype == torch.float32
    assert model.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert torch.equal(model.blocks[29].norm2.weight.cpu(), state["blocks.29.norm3.weight"].float())
    assert torch.equal(model.proj_out.weight.cpu(), state["head.head.weight"])
    with torch.no_grad():
        x = torch.randn(1, 16, 3, 16, 16, device="cuda", dtype=torch.bfloat16)
        context = torch.randn(1, 512, 4096, device="cuda", dtype=torch.bfloat16)
        out = model(x, torch.tensor([500.0], device="cuda"), context, return_dict=False)[0]
    assert out.shape == (1, 16, 3, 16, 16) and torch.isfinite(out).all()
