"""The released Lumos-Nexus / Omni-Video bundle (Hugging Face `howellyoung1/OmniVideo11B`) <-> a nexus export.

What the reference (`alibaba-damo-academy/Lumos-Custom`, `Lumos-Nexus/video_generator.py`) loads, relative to the
bundle folder, and where it goes in the export:

  wan/wanxiang1_3b/                        stock Wan2.1-T2V-1.3B, original layout -> transformer/ (overwritten by
                                           the wan_model.* keys below), vae/, text_encoder/, tokenizer/
  adapter/model.pt                         DM_Adapter: {"model_state_dict": ...}, maybe "module."-prefixed
  vision_head/vision_head/pytorch_model.bin  VisionHead state dict          -> connector/ (one OmniConnector,
  transformer/model.pt                     wan_model.* adapter.* ar_vision_head.* visual_context_adapter.*, loaded
                                           last over the others (the reference: strict=False; here: every key
                                           is used or reported, and a wrong one is an error)
  special_tokens/tokens.pkl                <ipl_st> <ipl_ed> <prp_st> <prp_ed> (+ <img_st> <img_ed>) -> the
                                           connector's 4 markers
  unconditioned_context/context.pkl        text_emb (T5 null), vlm_last_hidden_states (VLM null) -> null.safetensors
  ar_model/checkpoint/llm/                 VILA's language model (transformers Llama folder)   -> vlm (a link)

What T2V does not use (visual_context_adapter.*, <img_st>/<img_ed>, text_emb_siglip2) is kept under extras/ so that
writing the export back in the release layout (`write_bundle`) returns the same files' tensors bit for bit.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import save_file

from nexus.models.connector import PRESETS, ConnectorConfig, OmniConnector

FILES = {   # the reference's model_paths (video_generator.py), relative to the bundle folder
    "wan": "wan/wanxiang1_3b",
    "adapter": "adapter/model.pt",
    "vision_head": "vision_head/vision_head/pytorch_model.bin",
    "transformer": "transformer/model.pt",
    "llm": "ar_model/checkpoint/llm",
    "special_tokens": "special_tokens/tokens.pkl",
    "null": "unconditioned_context/context.pkl",
}
MARKERS = ("<ipl_st>", "<ipl_ed>", "<prp_st>", "<prp_ed>")   # connector tokens, then UMT5 tokens (video_model.py)
NULL_KEYS = ("text_emb", "vlm_last_hidden_states", "text_emb_siglip2")   # the reference's required keys
MODEL_PT_PARTS = ("wan_model.", "adapter.", "ar_vision_head.", "visual_context_adapter.")
RELEASE = {"context_len": 2560, "text_len": 512, "prompt_recipe": "vila_llama3", "vlm_dtype": "fp16"}
DOWNLOAD = ("download the Hugging Face repository howellyoung1/OmniVideo11B into one folder (it holds wan/, adapter/, "
            "vision_head/, transformer/, ar_model/, special_tokens/, unconditioned_context/) and pass that folder")


class BundleError(ValueError):
    """A release file is missing, unreadable or holds a key that is missing, unexpected or misshapen."""


@contextmanager
def atomic_folder(out: Path):
    """A temporary folder beside `out`, renamed to it when the block succeeds (replacing an old one), removed when it
    fails: a folder appears whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- reading the release's files --------------------------------------------------------------------------------
def check_bundle(root: str | Path) -> Path:
    """The bundle folder, or BundleError listing every missing part (before anything is read)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise BundleError(f"--bundle {root}: no such folder; {DOWNLOAD}")
    missing = [rel for key, rel in FILES.items() if not (root / rel).exists()]
    if not (root / FILES["llm"] / "config.json").is_file() and FILES["llm"] not in missing:
        missing.append(f"{FILES['llm']}/config.json")
    if missing:
        raise BundleError(f"{root} is not a complete OmniVideo11B bundle: missing {', '.join(missing)}; {DOWNLOAD}")
    return root


class _Unpickler(pickle.Unpickler):
    """The release's .pkl files are plain pickles of tensors: only what rebuilds tensors is allowed (a pickle can run
    code), and the storages inside are read with torch.load(weights_only=True)."""
    ALLOWED = {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
               ("collections", "OrderedDict"), ("torch", "Size")}

    def find_class(self, module, name):
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return lambda b: torch.load(io.BytesIO(b), weights_only=True, map_location="cpu")
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise BundleError(f"{self.path}: holds a {module}.{name} object; only tensors, lists and dicts are read "
                          f"from the release's .pkl files")


def read_pickle(path: Path):
    with open(path, "rb") as f:
        u = _Unpickler(f)
        u.path = path
        try:
            return u.load()
        except BundleError:
            raise
        except Exception as e:   # truncated download, wrong file
            raise BundleError(f"{path}: cannot be read as the release's pickle of tensors ({e}); download it again")


def read_torch(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise BundleError(f"{path}: cannot be read as a torch checkpoint ({type(e).__name__}: {e}); download it again")


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def release_tensors(root: Path) -> dict:
    """-> {"adapter", "vision_head", "model_pt", "markers", "null", "model_pt_wrapped"}: the release's tensors with
    its wrappers and prefixes removed, nothing dropped."""
    adapter = read_torch(root / FILES["adapter"])
    if not isinstance(adapter, dict) or "model_state_dict" not in adapter:
        raise BundleError(f"{root / FILES['adapter']}: no 'model_state_dict' entry (the reference reads its weights "
                          f"from there); found {sorted(adapter)[:5] if isinstance(adapter, dict) else type(adapter)}")
    model_pt = read_torch(root / FILES["transformer"])
    wrapped = isinstance(model_pt, dict) and "module" in model_pt
    model_pt = model_pt["module"] if wrapped else model_pt
    unknown = sorted(k for k in model_pt if not k.startswith(MODEL_PT_PARTS))
    if unknown:
        raise BundleError(f"{root / FILES['transformer']}: unexpected keys {unknown[:5]}{' ...' if len(unknown) > 5 else ''}"
                          f" (the reference would ignore them silently: strict=False); expected only "
                          f"{', '.join(p + '*' for p in MODEL_PT_PARTS)}")
    tokens = read_pickle(root / FILES["special_tokens"])
    null = read_pickle(root / FILES["null"])
    for name, d, keys in (("special_tokens", tokens, MARKERS), ("null", null, NULL_KEYS)):
        if not isinstance(d, dict) or any(k not in d for k in keys):
            have = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise BundleError(f"{root / FILES[name]}: needs the entries {list(keys)}, has {have}")
    return {"adapter": _strip(adapter["model_state_dict"], "module."),
            "adapter_meta": {k: v for k, v in adapter.items() if k != "model_state_dict"},
            "vision_head": _strip(read_torch(root / FILES["vision_head"]), "module."),
            "model_pt": model_pt, "model_pt_wrapped": wrapped, "tokens": tokens, "null": null}


# ---- the connector: release keys <-> OmniConnector keys --------------------------------------------------------
def _release_to_connector(vision_head: dict, adapter: dict) -> dict:
    """VisionHead (fc, visionHeadAdapter, decoder_query (1, Q, d)) and DM_Adapter (fc, adapter, decoder_query) ->
    OmniConnector's vision_in, vision, vision_queries, adapter_in, adapter, adapter_queries."""
    out = {}
    for src, (mlp, tf, queries, tf_key) in ((vision_head, ("vision_in", "vision", "vision_queries", "visionHeadAdapter")),
                                            (adapter, ("adapter_in", "adapter", "adapter_queries", "adapter"))):
        for k, v in src.items():
            if k == "decoder_query":
                out[queries] = v[0] if v.dim() == 3 else v
            elif k.startswith("fc."):
                out[f"{mlp}.{k[3:]}"] = v
            elif k.startswith(tf_key + "."):
                out[f"{tf}.{k[len(tf_key) + 1:]}"] = v
            else:
                out[f"unexpected:{queries.split('_')[0]}:{k}"] = v
    return out


def _connector_to_release(state: dict) -> tuple[dict, dict]:
    """The inverse of _release_to_connector: -> (VisionHead state, DM_Adapter state)."""
    vh, ad = {}, {}
    for k, v in state.items():
        if k == "markers":
            continue
        head, _, rest = k.partition(".")
        if k == "vision_queries":
            vh["decoder_query"] = v[None]
        elif k == "adapter_queries":
            ad["decoder_query"] = v[None]
        elif head == "vision_in":
            vh[f"fc.{rest}"] = v
        elif head == "vision":
            vh[f"visionHeadAdapter.{rest}"] = v
        elif head == "adapter_in":
            ad[f"fc.{rest}"] = v
        elif head == "adapter":
            ad[f"adapter.{rest}"] = v
        else:
            raise ValueError(f"connector key {k} has no place in the release layout")
    return vh, ad


def connector_config(state: dict) -> ConnectorConfig:
    """The release's connector architecture with the sizes read off its weights (heads, activations and markers are
    fixed in the reference: nn.Transformer's default 8 heads and ReLU, exact GELU, 4 markers)."""
    def layers(prefix):
        return 1 + max(int(k.split(".")[3]) for k in state if k.startswith(prefix))
    try:
        return ConnectorConfig(**{**PRESETS["omnivideo_v1"],
                                  "vlm_dim": state["vision_in.0.weight"].shape[1],
                                  "vision_dim": state["vision_queries"].shape[-1],
                                  "vision_queries": state["vision_queries"].shape[0],
                                  "vision_layers": layers("vision.encoder.layers."),
                                  "vision_ffn": state["vision.encoder.layers.0.linear1.weight"].shape[0],
                                  "out_dim": state["adapter_queries"].shape[-1],
                                  "adapter_queries": state["adapter_queries"].shape[0],
                                  "adapter_layers": layers("adapter.encoder.layers."),
                                  "adapter_ffn": state["adapter.encoder.layers.0.linear1.weight"].shape[0]})
    except (KeyError, ValueError) as e:
        raise BundleError(f"the release's vision head / adapter do not have the Omni-Video layout (no {e})") from None


def check_state(state: dict, expected: dict[str, torch.Size], where: str) -> None:
    """Every expected key present with its shape, nothing else: else BundleError naming the file and the keys."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k])})" for k in sorted(set(state) & set(expected))
                 if tuple(state[k].shape) != tuple(expected[k])]
    problems = [f"{label} {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen)) if keys]
    if problems:
        raise BundleError(f"{where}: " + "; ".join(problems))


def expected_connector(config: ConnectorConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):
        return {k: v.shape for k, v in OmniConnector(config).state_dict().items()}


# ---- bundle -> export ---------------------------------------------------------------------------------------------
def small_transformer(stock: Path, overrides: dict, overrides_file: Path, out: Path) -> dict:
    """The stock 1.3B (original layout) with transformer/model.pt's wan_model.* tensors over it, as the reference
    loads it, -> a diffusers WanTransformer3DModel folder. A wan_model.* key the stock model lacks, or of another
    shape, is an error (the reference's strict=False would drop it). -> how many tensors came from each file."""
    from diffusers import WanTransformer3DModel
    from safetensors import safe_open

    from nexus.convert import wan, wan_keys
    from nexus.models.loading import read_config
    found = wan.transformer_files(stock)
    bad = [f"unexpected key wan_model.{k}" for k in overrides if k not in found]
    bad += [f"key wan_model.{k} has shape {tuple(v.shape)} where the stock model has {tuple(found[k][0])}"
            for k, v in overrides.items() if k in found and tuple(v.shape) != tuple(found[k][0])]
    if bad:
        raise BundleError(f"{overrides_file}: " + "; ".join(bad[:8]) + (f"; ... ({len(bad)})" if len(bad) > 8 else ""))
    state = {}
    for path in sorted({p for _, p in found.values()}):
        with safe_open(str(path), framework="pt") as f:
            state |= {k: f.get_tensor(k) for k in f.keys() if k not in overrides}
    state |= overrides
    model = wan._empty(WanTransformer3DModel.from_config, wan.diffusers_config(read_config(stock / wan.CONFIG), state))
    names = wan_keys.transformer_to_diffusers(state)
    wan.check_state(names, {k: (tuple(v.shape), overrides_file if k in overrides else found[k][1])
                            for k, v in state.items()}, wan._expected(model), stock, wan_keys.TRANSFORMER_TO_ORIGINAL)
    model.load_state_dict({names[k]: v for k, v in state.items()}, strict=True, assign=True)
    model.save_pretrained(out, safe_serialization=True)
    return {"stock": len(state) - len(overrides), "from_model_pt": len(overrides)}


def sha256(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _provenance(root: Path, progress: bool) -> dict:
    """file -> {bytes, sha256} for every file the conversion reads (the VLM is linked, not read: its size only)."""
    from tqdm.auto import tqdm
    files = [p for key, rel in FILES.items() if key != "llm"
             for p in ([root / rel] if (root / rel).is_file() else sorted((root / rel).rglob("*"))) if p.is_file()]
    out = {}
    for p in tqdm(files, desc="sha256", disable=not progress, unit="file"):
        out[str(p.relative_to(root))] = {"bytes": p.stat().st_size, "sha256": sha256(p)}
    llm = root / FILES["llm"]
    out[FILES["llm"]] = {"bytes": sum(p.stat().st_size for p in llm.rglob("*") if p.is_file()), "linked": True}
    return out


def convert_bundle(bundle: str | Path, out: str | Path, overwrite: bool = False, progress: bool = True,
                   hash_files: bool = True, large: str | Path | None = None) -> Path:
    """OmniVideo11B bundle -> nexus export (connector/, transformer/ (diffusers), null.safetensors, extras/, nexus.json
    naming the bundle's frozen parts: wan_path (VAE, UMT5, tokenizer) and vlm_path). Written beside `out` and renamed
    into place: whole or not at all. The export is a LumosNexusPipeline folder too, sampling as the release did (the
    reference UniPC schedule), its large generator `large` (or <bundle>/Wan2.1-T2V-14B when that folder exists; else
    from_pretrained(..., large=) names it)."""
    from nexus.convert import wan
    root, out = check_bundle(bundle), Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: pass --overwrite or choose another folder")
    wan.check_original(root / FILES["wan"], "the bundle's small generator")
    r = release_tensors(root)
    model_pt = r["model_pt"]
    report = {"transformer/model.pt": {p.rstrip("."): sum(k.startswith(p) for k in model_pt) for p in MODEL_PT_PARTS}}

    # connector: adapter/model.pt and the vision head, then transformer/model.pt's adapter.* / ar_vision_head.* over
    # them (the reference's load order: the last file wins)
    conn = _release_to_connector(r["vision_head"], r["adapter"])
    files = f"{root / FILES['vision_head']} + {root / FILES['adapter']}"
    bad = sorted(k.split(":", 2)[2] + f" ({k.split(':')[1]})" for k in conn if k.startswith("unexpected:"))
    if bad:
        raise BundleError(f"{files}: unexpected keys {bad[:5]}")
    config = connector_config(conn)
    expected = expected_connector(config)
    check_state(conn, {k: v for k, v in expected.items() if k != "markers"}, files)    # strict, as the reference
    late = _release_to_connector(_strip({k: v for k, v in model_pt.items() if k.startswith("ar_vision_head.")},
                                        "ar_vision_head."),
                                 _strip({k: v for k, v in model_pt.items() if k.startswith("adapter.")}, "adapter."))
    unknown = sorted(k.split(":")[-1] if k.startswith("unexpected:") else k for k in late if k not in conn)
    if unknown:
        raise BundleError(f"{root / FILES['transformer']}: adapter/vision-head keys the separate files do not have: "
                          f"{unknown[:5]}")
    check_state({**conn, **late}, {k: v for k, v in expected.items() if k != "markers"}, root / FILES["transformer"])
    overridden = {k: float((conn[k].float() - v.float()).abs().max()) for k, v in late.items()}
    conn.update(late)      # transformer/model.pt is loaded last: its adapter.* / ar_vision_head.* win
    conn["markers"] = torch.stack([r["tokens"][m].reshape(-1) for m in MARKERS]).float()   # fp32, as the reference
    check_state(conn, expected, f"the connector of {root} (with {root / FILES['special_tokens']})")
    report["connector"] = {"from_model_pt": len(late), "max_abs_change_by_model_pt": max(overridden.values(), default=0.0)}

    # null conditions: text_emb[0] (T5, the reference's uncond_context) and the VLM's null hidden states
    null = r["null"]
    umt5_null, vlm_null = null["text_emb"][0], null["vlm_last_hidden_states"]
    umt5_null = umt5_null[0] if umt5_null.dim() == 3 else umt5_null
    vlm_null = vlm_null[0] if vlm_null.dim() == 3 else vlm_null
    if umt5_null.dim() != 2 or vlm_null.dim() != 2 or vlm_null.shape[-1] != config.vlm_dim or \
            umt5_null.shape[-1] != config.out_dim:
        raise BundleError(f"{root / FILES['null']}: text_emb[0] {tuple(umt5_null.shape)} must be (T, {config.out_dim}) "
                          f"and vlm_last_hidden_states {tuple(vlm_null.shape)} (L, {config.vlm_dim})")

    with atomic_folder(out) as tmp:
        wan_state = {k[len("wan_model."):]: v for k, v in model_pt.items() if k.startswith("wan_model.")}
        report["transformer"] = small_transformer(root / FILES["wan"], wan_state, root / FILES["transformer"],
                                                  tmp / "transformer")
        (tmp / "connector").mkdir()
        (tmp / "connector" / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        save_file({k: v.contiguous() for k, v in conn.items()}, str(tmp / "connector" / "model.safetensors"))
        save_file({"umt5": umt5_null.float().contiguous(), "vlm": vlm_null.float().contiguous()},
                  str(tmp / "null.safetensors"))
        extras = {f"visual_context_adapter.{k[len('visual_context_adapter.'):]}": v for k, v in model_pt.items()
                  if k.startswith("visual_context_adapter.")}
        extras |= {f"special_tokens.{k}": v for k, v in r["tokens"].items() if k not in MARKERS}
        extras |= {f"special_tokens_shape.{k}": torch.tensor(list(r["tokens"][k].shape)) for k in MARKERS}
        extras |= {f"null.{k}.{i}": t for k in null if k not in ("text_emb", "vlm_last_hidden_states")
                   for i, t in enumerate(null[k] if isinstance(null[k], (list, tuple)) else [null[k]])}
        (tmp / "extras").mkdir()
        save_file({k: v.contiguous() for k, v in extras.items()}, str(tmp / "extras" / "release.safetensors"))
        info = {"source": "omnivideo11b", "bundle": str(root.resolve()), "conditioning": "connector",
                "generator_train": "full", "connector": "omnivideo_v1", **RELEASE, "null": "null.safetensors",
                # the frozen parts stay where they were downloaded (original layouts load as they are)
                "wan_path": str((root / FILES["wan"]).resolve()), "vlm_path": str((root / FILES["llm"]).resolve()),
                "markers": list(MARKERS), "model_pt_wrapped": r["model_pt_wrapped"],
                "adapter_meta": {k: (v if isinstance(v, (int, float, str)) else str(v))
                                 for k, v in r["adapter_meta"].items()},
                "keys": report, "files": _provenance(root, progress) if hash_files else None}
        (tmp / "nexus.json").write_text(json.dumps(info, indent=2))
        large = large or (root / "Wan2.1-T2V-14B" if (root / "Wan2.1-T2V-14B").is_dir() else None)
        from nexus.pipelines.folder import export_index
        export_index(tmp, info, str(Path(large).resolve()) if large else None, scheduler="unipc_reference")
    return out
