"""Wan2.1 folders in the original layout (as Wan-AI publishes Wan2.1-T2V-14B / -1.3B, and as the OmniVideo11B release
ships its small generator) <-> the classes nexus runs: diffusers' WanTransformer3DModel and AutoencoderKLWan,
transformers' UMT5EncoderModel. An original folder holds

  config.json                               WanModel's config (no text_dim: it is the width of text_embedding.0.weight)
  diffusion_pytorch_model.safetensors       WanModel keys; or -0000K-of-0000N shards + the .safetensors.index.json
  Wan2.1_VAE.pth                            WanVAE's state dict
  models_t5_umt5-xxl-enc-bf16.pth           Wan's own T5Encoder (umt5-xxl: a relative position embedding in every block)
  google/umt5-xxl/                          the tokenizer

Keys original -> diffusers go through diffusers' own converters (diffusers.loaders.single_file_utils), applied to
the key names alone; diffusers -> original through the explicit tables of nexus.convert.wan_keys, checked on the key set at hand to be
the converters' exact inverse. T5 <-> UMT5 is one table read both ways. Every load is strict: a missing, unexpected
or misshapen key is an error naming the file and the key, found from shapes alone (safetensors headers, the .pth
pickles opened with mmap) before a tensor is read.
"""
from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import torch

from nexus.convert.wan_keys import (TRANSFORMER_TO_ORIGINAL, UMT5_TIED, UMT5_TO_T5, VAE_TO_ORIGINAL, WeightsError,
                                    t5_to_umt5, transformer_to_diffusers, transformer_to_original, umt5_to_t5,
                                    vae_to_diffusers, vae_to_original)
from nexus.models.loading import LayoutError, read_config

CONFIG, WEIGHTS = "config.json", "diffusion_pytorch_model.safetensors"
INDEX = WEIGHTS + ".index.json"
VAE_FILE, T5_FILE, TOKENIZER = "Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth", "google/umt5-xxl"
# the files of each part, named as nexus.models.loading.WAN_LAYOUT's parts; any one of a tuple satisfies it
LAYOUT = {
    "transformer": (INDEX, WEIGHTS),
    "vae": (VAE_FILE,),
    "text_encoder": (T5_FILE,),
    "tokenizer": tuple(f"{TOKENIZER}/{f}" for f in ("tokenizer.json", "spiece.model", "tokenizer_config.json")),
}
DESCRIPTION = (f"{CONFIG} (a WanModel config), {WEIGHTS} (or its shards and {INDEX}), {VAE_FILE}, {T5_FILE} and "
               f"{TOKENIZER}/")


# ---- the folder ------------------------------------------------------------------------------------------------
def is_original_wan(folder) -> bool:
    """A folder whose config.json is a WanModel's (Wan-AI's layout), whatever else it holds or lacks."""
    cfg = Path(folder or "").expanduser() / CONFIG
    if not folder or not cfg.is_file():
        return False
    try:
        c = read_config(cfg)
    except (OSError, ValueError):
        return False
    return c.get("_class_name") == "WanModel" or {"dim", "num_heads", "num_layers", "in_dim"} <= set(c)


def missing_parts(folder, parts=None) -> list[str]:
    """What an original folder lacks of `parts` (default: all of LAYOUT), shards the index names included."""
    root = Path(folder).expanduser()
    missing = [] if (root / CONFIG).is_file() else [CONFIG]
    missing += [" or ".join(files) for name, files in LAYOUT.items()
                if (parts is None or name in parts) and not any((root / f).is_file() for f in files)]
    if (parts is None or "transformer" in parts) and (root / INDEX).is_file():
        missing += [f"{s} (named in {INDEX})" for s in sorted(set(_weight_map(root).values()))
                    if not (root / s).is_file()]
    return missing


def check_original(folder, what: str = "the Wan folder", parts=None) -> Path:
    """The folder, or LayoutError naming everything it lacks of the original layout."""
    root = Path(folder).expanduser()
    if not is_original_wan(root):
        raise LayoutError(f"{what} {root}: no {CONFIG} of a WanModel; an original-layout Wan folder holds "
                          f"{DESCRIPTION}")
    missing = missing_parts(root, parts)
    if missing:
        raise LayoutError(f"{what} {root} is not a complete original-layout Wan folder: missing {', '.join(missing)}. "
                          f"It must hold {DESCRIPTION}")
    return root


def _weight_map(root: Path) -> dict[str, str]:
    index = read_config(root / INDEX)
    if not isinstance(index.get("weight_map"), dict):
        raise WeightsError(f"{root / INDEX}: no weight_map (key -> shard file)")
    return index["weight_map"]


def safetensors_shapes(path) -> dict[str, tuple[int, ...]]:
    """key -> shape from a safetensors file's header (its first 8 + n bytes; no tensor is read)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None


def transformer_files(folder) -> dict[str, tuple[tuple[int, ...], Path]]:
    """original key -> (shape, the file holding it), single file or shards; the index and the shards must agree."""
    root = Path(folder)
    if not (root / INDEX).is_file():
        return {k: (s, root / WEIGHTS) for k, s in safetensors_shapes(root / WEIGHTS).items()}
    weight_map, out, problems = _weight_map(root), {}, []
    for shard in sorted(set(weight_map.values())):
        path = root / shard
        if not path.is_file():
            raise WeightsError(f"{path}: missing from disk (the shard {INDEX} names for "
                               f"{sum(v == shard for v in weight_map.values())} keys)")
        for k, s in safetensors_shapes(path).items():
            if weight_map.get(k) == shard:
                out[k] = (s, path)
            else:
                problems.append(f"{path}: key {k} is not in this shard by {INDEX} (which names {weight_map.get(k)})")
    problems += [f"{root / shard}: no key {k} (which {INDEX} puts there)" for k, shard in weight_map.items()
                 if k not in out and (root / shard).is_file()]
    if problems:
        raise WeightsError("; ".join(problems))
    return out


def transformer_shapes(folder) -> dict[str, tuple[int, ...]]:
    return {k: s for k, (s, _) in transformer_files(folder).items()}


def _read_pth(path) -> dict[str, torch.Tensor]:
    """A .pth state dict, memory-mapped (zip format: only its pickle is read until a tensor is used)."""
    try:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:       # the legacy (pre-zip) format cannot be mapped: read it whole
            if "mmap" not in str(e):
                raise
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{path}: cannot be read as a torch state dict ({type(e).__name__}: {e})") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{path}: not a state dict (a dict of tensors)")
    return sd


def _shape(state_or_shapes, key) -> tuple[int, ...]:
    v = state_or_shapes[key]
    return tuple(v.shape) if hasattr(v, "shape") else tuple(v)


# ---- strict loading --------------------------------------------------------------------------------------------
def check_state(names: dict[str, str], found: dict[str, tuple[tuple[int, ...], Path]], expected: dict[str, tuple],
                where_missing, back) -> None:
    """names: original key -> class key; found: original key -> (shape, file); expected: class key -> shape (from the
    config). WeightsError naming the file and the (original) key of every missing, unexpected or misshapen key."""
    problems = []
    for orig, new in names.items():
        shape, file = found[orig]
        if new not in expected:
            problems.append(f"{file}: unexpected key {orig}")
        elif tuple(shape) != tuple(expected[new]):
            problems.append(f"{file}: key {orig} has shape {tuple(shape)} where the config makes "
                            f"{tuple(expected[new])}")
    have = set(names.values())
    problems += [f"{where_missing}: missing key {back(new) or new}" for new in expected if new not in have]
    if problems:
        raise WeightsError("; ".join(problems[:8]) + (f"; ... ({len(problems)} problems)" if len(problems) > 8 else ""))


def _dtype_rule(model, dtype: torch.dtype, halves=(torch.float16, torch.bfloat16)):
    """The dtype of each tensor as from_pretrained(torch_dtype=dtype) leaves it (nexus.models.loading.
    cast_like_pretrained's rule): the class's _keep_in_fp32_modules stay fp32 under the `halves` (diffusers: fp16 and
    bf16; transformers: fp16 only)."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    return lambda name: torch.float32 if dtype in halves and any(k in name.split(".") for k in keep) else dtype


def _assign(model, state: dict, rule, device=None):
    """Load a checked state into a model built with empty weights; its own buffers cast by the same dtype rule."""
    model.load_state_dict(state, strict=True, assign=True)
    for name, b in model.named_buffers():
        if b.is_floating_point():
            b.data = b.data.to(rule(name))
    if device is not None:
        model.to(device)
    return model.eval()


def _expected(model) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ---- transformer -----------------------------------------------------------------------------------------------
def diffusers_config(original_config: dict, state_or_shapes) -> dict:
    """WanTransformer3DModel's config of a WanModel config.json plus its weights' shapes (tensors or shapes, original
    keys; text_dim and the patch are read off text_embedding.0 and patch_embedding)."""
    c = original_config
    if c.get("model_type", "t2v") != "t2v":
        raise WeightsError(f"a WanModel of model_type={c.get('model_type')!r}: only text-to-video (t2v) converts")
    try:
        text_dim = _shape(state_or_shapes, "text_embedding.0.weight")[1]
        patch = _shape(state_or_shapes, "patch_embedding.weight")[2:]
        dim, heads = int(c["dim"]), int(c["num_heads"])
        return dict(patch_size=list(patch), num_attention_heads=heads, attention_head_dim=dim // heads,
                    in_channels=int(c["in_dim"]), out_channels=int(c["out_dim"]), text_dim=int(text_dim),
                    freq_dim=int(c["freq_dim"]), ffn_dim=int(c["ffn_dim"]), num_layers=int(c["num_layers"]),
                    cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=float(c.get("eps", 1e-6)),
                    rope_max_seq_len=1024)      # Wan's rope table: 1024 positions
    except KeyError as e:
        raise WeightsError(f"a WanModel config and weights need {e}: not a WanModel folder") from None


def original_config(config: dict) -> dict:
    """WanModel's config.json for a WanTransformer3DModel config. As in Wan-AI's files, no text_dim (WanModel does
    not record it: its code builds 4096, so a tiny model's width is known from its weights only)."""
    c = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    odd = {k: c.get(k) for k, want in (("patch_size", [1, 2, 2]), ("cross_attn_norm", True),
                                       ("qk_norm", "rms_norm_across_heads"), ("image_dim", None),
                                       ("added_kv_proj_dim", None), ("pos_embed_seq_len", None))
           if (list(c[k]) if isinstance(c.get(k), (list, tuple)) else c.get(k, want)) != want}
    if odd:
        raise ValueError(f"the original WanModel (text-to-video) cannot hold a transformer with {odd}")
    return {"_class_name": "WanModel", "_diffusers_version": "0.30.0",
            "dim": c["num_attention_heads"] * c["attention_head_dim"], "eps": c.get("eps", 1e-6),
            "ffn_dim": c["ffn_dim"], "freq_dim": c["freq_dim"], "in_dim": c["in_channels"], "model_type": "t2v",
            "num_heads": c["num_attention_heads"], "num_layers": c["num_layers"], "out_dim": c["out_channels"],
            "text_len": 512}


def transformer_config(folder) -> dict:
    """The diffusers config of an original folder, from config.json and the safetensors headers only."""
    return diffusers_config(read_config(Path(folder) / CONFIG), transformer_shapes(folder))


def _empty(cls, *args, **kwargs):
    from accelerate import init_empty_weights
    with init_empty_weights():          # parameters on the meta device, buffers (rope tables) real
        return cls(*args, **kwargs)


def load_original_transformer(folder, dtype: torch.dtype = torch.float32, device="cpu"):
    """An original folder's transformer as a diffusers WanTransformer3DModel, strictly, tensors cast one at a time
    (peak memory: the model in `dtype` plus one tensor)."""
    from diffusers import WanTransformer3DModel
    from safetensors import safe_open
    root = check_original(folder, "the Wan transformer", parts=("transformer",))
    found = transformer_files(root)
    shapes = {k: s for k, (s, _) in found.items()}
    model = _empty(WanTransformer3DModel.from_config, diffusers_config(read_config(root / CONFIG), shapes))
    names = transformer_to_diffusers(found)
    check_state(names, found, _expected(model), root / (INDEX if (root / INDEX).is_file() else WEIGHTS),
                TRANSFORMER_TO_ORIGINAL)
    rule, state = _dtype_rule(model, dtype), {}
    for path in sorted({p for _, p in found.values()}):
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            for k in f.keys():
                state[names[k]] = f.get_tensor(k).to(rule(names[k]))
    return _assign(model, state, rule, device)


def _shard_names(n: int) -> list[str]:
    return [WEIGHTS] if n == 1 else [WEIGHTS.replace(".safetensors", f"-{i:05d}-of-{n:05d}.safetensors")
                                     for i in range(1, n + 1)]


def save_original_transformer(model_or_state, config: dict | None, folder, shards: int = 1) -> dict[str, torch.Tensor]:
    """Write config.json and the weights (one file, or `shards` files + the index) in the original layout.
    model_or_state: a WanTransformer3DModel, or a state dict in diffusers or original keys; config: its diffusers or
    original config (None: the model's). Checked like a load. Returns the state written (original keys)."""
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file
    if isinstance(model_or_state, torch.nn.Module):
        state, config = model_or_state.state_dict(), config or dict(model_or_state.config)
    else:
        state = dict(model_or_state)
    if config is None:
        raise ValueError("save_original_transformer: a state dict needs its config")
    if "time_projection.1.weight" not in state:                 # diffusers keys
        state = {o: state[k] for k, o in transformer_to_original(state).items()}
    ocfg = config if "dim" in config else original_config(config)
    with torch.device("meta"):
        meta = WanTransformer3DModel.from_config(diffusers_config(ocfg, state))
    names = transformer_to_diffusers(state)
    check_state(names, {k: (tuple(v.shape), "the state to save") for k, v in state.items()}, _expected(meta),
                "the state to save", TRANSFORMER_TO_ORIGINAL)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("diffusion_pytorch_model*.safetensors*"):      # another sharding written before
        stale.unlink()
    (folder / CONFIG).write_text(json.dumps(ocfg, indent=2))
    files, keys = _shard_names(shards), list(state)
    total = sum(v.numel() * v.element_size() for v in state.values())
    groups, size, i = [[] for _ in files], 0, 0
    for k in keys:                      # consecutive keys, about total / shards bytes per shard
        if size >= (i + 1) * total / len(files) and i < len(files) - 1:
            i += 1
        groups[i].append(k)
        size += state[k].numel() * state[k].element_size()
    for name, group in zip(files, groups):
        save_file({k: state[k].contiguous() for k in group}, str(folder / name), metadata={"format": "pt"})
    if shards > 1:
        weight_map = {k: name for name, group in zip(files, groups) for k in group}
        (folder / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return state


# ---- VAE -------------------------------------------------------------------------------------------------------
def _vae_defaults() -> dict:
    from diffusers import AutoencoderKLWan
    return {k: p.default for k, p in inspect.signature(AutoencoderKLWan.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def vae_config(state_or_shapes) -> dict:
    """AutoencoderKLWan's config of a WanVAE state (original keys): base_dim, z_dim, dim_mult, the temporal
    downsampling and the compression read off the shapes, everything else diffusers' defaults, which are Wan2.1's
    (latents_mean / latents_std: the .pth does not carry them; Wan's code hard-codes these 16 channels' values)."""
    s = state_or_shapes
    blocks = sorted({int(k.split(".")[2]) for k in s if k.startswith("encoder.downsamples.")})
    resamples = [i for i in blocks if f"encoder.downsamples.{i}.resample.1.weight" in s]
    levels = len(resamples) + 1
    num_res = (len(blocks) - len(resamples)) // levels
    if (levels, num_res) != (4, 2) or any(".to_qkv." in k for k in s if ".middle." not in k):
        raise WeightsError(f"a WanVAE with {levels} levels of {num_res} residual blocks (or attention outside the "
                           f"middle): diffusers' converter reads only Wan2.1's structure, 4 levels of 2")
    try:
        base, z = _shape(s, "encoder.conv1.weight")[0], _shape(s, "conv2.weight")[0]
        mult = [_shape(s, f"encoder.downsamples.{level * (num_res + 1)}.residual.2.weight")[0] // base
                for level in range(levels)]
    except KeyError as e:
        raise WeightsError(f"no {e} among the VAE weights: not a WanVAE state") from None
    temporal = [f"encoder.downsamples.{i}.time_conv.weight" in s for i in resamples]
    cfg = _vae_defaults()
    if z != len(cfg["latents_mean"]):
        raise WeightsError(f"a WanVAE with z_dim={z}: Wan's code (and so this conversion) has latent statistics for "
                           f"{len(cfg['latents_mean'])} channels only")
    return {**cfg, "base_dim": base, "z_dim": z, "dim_mult": mult, "num_res_blocks": num_res, "attn_scales": [],
            "temperal_downsample": temporal, "scale_factor_temporal": 2 ** sum(temporal),
            "scale_factor_spatial": 2 ** (levels - 1)}


def vae_folder_config(folder) -> dict:
    """From the .pth's shapes (memory-mapped: its tensors are not read)."""
    return vae_config(_read_pth(Path(folder) / VAE_FILE))


def load_original_vae(folder, dtype: torch.dtype = torch.float32):
    from diffusers import AutoencoderKLWan
    path = Path(check_original(folder, "the Wan VAE", parts=("vae",))) / VAE_FILE
    sd = _read_pth(path)
    model = _empty(AutoencoderKLWan, **vae_config(sd))
    names = vae_to_diffusers(sd)
    check_state(names, {k: (tuple(v.shape), path) for k, v in sd.items()}, _expected(model), path, VAE_TO_ORIGINAL)
    rule = _dtype_rule(model, dtype)
    return _assign(model, {names[k]: v.to(rule(names[k])) for k, v in sd.items()}, rule)


def save_original_vae(model_or_state, path) -> dict[str, torch.Tensor]:
    """Wan2.1_VAE.pth from an AutoencoderKLWan (or its state dict); returns the state written (original keys)."""
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else dict(model_or_state)
    out = {o: state[k].contiguous() for k, o in vae_to_original(state).items()}
    vae_config(out)                    # a structure the loader reads back
    torch.save(out, path)
    return out


# ---- T5 / UMT5 -------------------------------------------------------------------------------------------------
def umt5_config(state_or_shapes) -> dict:
    """UMT5Config of a Wan T5Encoder state (original keys). Fixed by Wan's t5.py: gated tanh-GELU FFN, relative
    position buckets up to distance 128, RMS norm eps 1e-6; umt5's pad 0 / eos 1."""
    s = state_or_shapes
    try:
        vocab, d_model = _shape(s, "token_embedding.weight")
        buckets, heads = _shape(s, "blocks.0.pos_embedding.embedding.weight")
        d_kv, d_ff = _shape(s, "blocks.0.attn.q.weight")[0] // heads, _shape(s, "blocks.0.ffn.fc1.weight")[0]
    except KeyError as e:
        raise WeightsError(f"no {e} among the T5 weights: not Wan's umt5 T5Encoder (a position embedding per "
                           f"block)") from None
    layers = 1 + max(int(k.split(".")[1]) for k in s if k.startswith("blocks."))
    return dict(vocab_size=vocab, d_model=d_model, d_kv=d_kv, d_ff=d_ff, num_heads=heads, num_layers=layers,
                num_decoder_layers=layers, relative_attention_num_buckets=buckets, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1,
                decoder_start_token_id=0, tie_word_embeddings=False)


def umt5_folder_config(folder) -> dict:
    return umt5_config(_read_pth(Path(folder) / T5_FILE))


def load_original_umt5(folder, dtype: torch.dtype = torch.float32, device="cpu"):
    """Wan's T5 .pth as a transformers UMT5EncoderModel (memory-mapped: each tensor is read as it is cast/moved)."""
    from transformers import UMT5Config, UMT5EncoderModel
    path = Path(check_original(folder, "the Wan T5 encoder", parts=("text_encoder",))) / T5_FILE
    sd = _read_pth(path)
    model = _empty(UMT5EncoderModel, UMT5Config(**umt5_config(sd)))
    expected = {k: v for k, v in _expected(model).items() if k != UMT5_TIED}
    names = t5_to_umt5(sd)
    check_state(names, {k: (tuple(v.shape), path) for k, v in sd.items()}, expected, path, UMT5_TO_T5)
    rule = _dtype_rule(model, dtype, halves=(torch.float16,))
    state = {names[k]: torch.nn.Parameter(v.to(rule(names[k])), requires_grad=False) for k, v in sd.items()}
    state[UMT5_TIED] = state["shared.weight"]     # one Parameter for both names: tied as transformers ties them
    return _assign(model, state, rule, device).requires_grad_(False)


def save_original_t5(model_or_state, path, dtype: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
    """models_t5_umt5-xxl-enc-bf16.pth from a UMT5EncoderModel (or its state dict), in bf16 as Wan ships it."""
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else dict(model_or_state)
    if "shared.weight" not in state and UMT5_TIED in state:     # a folder that saved the tied name only
        state["shared.weight"] = state.pop(UMT5_TIED)
    if UMT5_TIED in state and not torch.equal(state[UMT5_TIED], state["shared.weight"]):
        raise WeightsError(f"{UMT5_TIED} differs from shared.weight: Wan's T5 has a single token embedding")
    out = {o: state[k].to(dtype).contiguous() for k, o in umt5_to_t5(state).items()}
    torch.save(out, path)
    return out


# ---- whole folders ---------------------------------------------------------------------------------------------
def _folder_state(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a diffusers / transformers model folder's safetensors files, in their stored dtypes."""
    from safetensors.torch import load_file
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .safetensors weights")
    return {k: v for f in files for k, v in load_file(str(f)).items()}


def write_original_folder(source, out, shards: int = 1) -> dict[str, torch.Tensor]:
    """A diffusers-layout Wan folder, or a nexus export of one (transformer/; the VAE, UMT5 and tokenizer from the
    folder itself or from the Wan folder its nexus.json names, in either layout) -> an original-layout folder.
    Parts already in the original layout are copied as they are. Returns the transformer state written."""
    source, out = Path(source), Path(out)
    parts = source
    if not (source / "vae").is_dir() and not is_original_wan(source) and (source / "nexus.json").is_file():
        parts = Path(read_config(source / "nexus.json").get("wan_path") or source)
    out.mkdir(parents=True, exist_ok=True)
    state = save_original_transformer(_folder_state(source / "transformer"),
                                      read_config(source / "transformer" / CONFIG), out, shards)
    if is_original_wan(parts):
        check_original(parts, "the Wan folder of the VAE, T5 and tokenizer", parts=("vae", "text_encoder", "tokenizer"))
        for name in (VAE_FILE, T5_FILE):
            shutil.copy2(parts / name, out / name)
        shutil.copytree(parts / TOKENIZER, out / TOKENIZER, dirs_exist_ok=True)
    else:
        for part in ("vae", "text_encoder", "tokenizer"):
            if not (parts / part).is_dir():
                raise FileNotFoundError(f"{parts}: no {part}/ to write {out} from")
        save_original_vae(_folder_state(parts / "vae"), out / VAE_FILE)
        save_original_t5(_folder_state(parts / "text_encoder"), out / T5_FILE)
        shutil.copytree(parts / "tokenizer", out / TOKENIZER, dirs_exist_ok=True)
    return state
