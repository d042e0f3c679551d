"""A nexus export -> the released model's layout (OmniVideo11B), so the reference scripts and Omni-Video tooling load
nexus-trained weights; the inverse of nexus.convert.omnivideo.convert_bundle (converting back is bit-exact)."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch
from safetensors.torch import load_file

from nexus.convert.omnivideo import FILES, MARKERS, _connector_to_release, atomic_folder
from nexus.models.connector import PRESETS, ConnectorConfig


# ---- export -> bundle (write-back) --------------------------------------------------------------------------------
def release_compatible(config: ConnectorConfig) -> list[str]:
    """What in a connector the reference would compute differently (its nn.Transformers are built with 8 heads,
    ReLU, 4 d feed-forwards and 4 + 4 layers, exact-GELU MLPs, 4 vision queries): the differences, empty if none."""
    want = PRESETS["omnivideo_v1"]
    diffs = [f"{k}={getattr(config, k)} (the reference builds {want[k]})" for k in
             ("vision_heads", "adapter_heads", "mlp_activation", "ffn_activation", "vision_layers", "adapter_layers",
              "vision_queries") if getattr(config, k) != want[k]]
    diffs += [f"{k}={getattr(config, k)} (the reference builds 4 x {d}={4 * getattr(config, d)})" for k, d in
              (("vision_ffn", "vision_dim"), ("adapter_ffn", "out_dim")) if getattr(config, k) != 4 * getattr(config, d)]
    return diffs


def write_bundle(export: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """A nexus export (tools/export.py's output, or convert_bundle's) -> the release layout, so the reference scripts
    and Omni-Video tooling load nexus-trained weights: adapter/, vision_head/, transformer/model.pt, special_tokens/,
    unconditioned_context/, wan/wanxiang1_3b/ (the small generator in the original layout, with the VAE, T5 and
    tokenizer converted back). ar_model/ (VILA) and the 14B are not written: NEXT_STEPS.txt says where they go."""
    from nexus.convert import wan
    export, out = Path(export), Path(out)
    meta = json.loads((export / "nexus.json").read_text()) if (export / "nexus.json").is_file() else {}
    if not (export / "connector" / "config.json").is_file() or not (export / "transformer" / "config.json").is_file():
        raise FileNotFoundError(f"{export}: not a full stage-1 export (needs connector/ and transformer/; an export of "
                                f"a generator_train=lora or frozen run has no full transformer to write back)")
    config = ConnectorConfig(**json.loads((export / "connector" / "config.json").read_text()))
    diffs = release_compatible(config)
    if diffs:
        raise ValueError(f"{export}: the reference would run this connector differently: {'; '.join(diffs)}. Train "
                         f"with connector=omnivideo_v1 (recipes/connector/) to write the release layout")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: pass --overwrite or choose another folder")
    null_file = export / meta.get("null", "null.safetensors")
    if not null_file.is_file():
        raise FileNotFoundError(f"{null_file}: the export has no null conditions (the release ships them as "
                                f"unconditioned_context/context.pkl); precompute the empty prompt's features with "
                                f"tools/precompute.py and save them there as null.safetensors ('umt5', 'vlm')")
    conn = load_file(str(export / "connector" / "model.safetensors"))
    extras = load_file(str(export / "extras" / "release.safetensors")) if (export / "extras" / "release.safetensors").is_file() else {}
    vh, ad = _connector_to_release(conn)
    m = conn["markers"]
    markers = [m[0], m[1], m[2], m[3]] if len(m) == 4 else [m[0], m[1], m[0], m[1]]   # shared pair: the same context
    tokens = {k[len("special_tokens."):]: v for k, v in extras.items() if k.startswith("special_tokens.")}
    for name, t in zip(MARKERS, markers):
        shape = extras.get(f"special_tokens_shape.{name}")
        tokens[name] = t.reshape(shape.tolist()) if shape is not None else t[None]
    null = load_file(str(null_file))
    context = {"text_emb": [null["umt5"]], "vlm_last_hidden_states": null["vlm"][None]}
    kept = sorted({k.split(".")[1] for k in extras if k.startswith("null.")})
    for k in kept:
        context[k] = [extras[f"null.{k}.{i}"] for i in range(sum(x.startswith(f"null.{k}.") for x in extras))]
    if "text_emb_siglip2" not in context:   # required by the reference's loader, unused for text-to-video
        context["text_emb_siglip2"] = [torch.zeros(1, config.vision_dim)]
    with atomic_folder(out) as tmp:
        for rel in ("adapter", "vision_head/vision_head", "transformer", "special_tokens", "unconditioned_context"):
            (tmp / rel).mkdir(parents=True)
        wan_state = wan.write_original_folder(export, tmp / FILES["wan"])       # transformer, VAE, T5, tokenizer
        torch.save({"model_state_dict": ad, **{k: v for k, v in meta.get("adapter_meta", {}).items()
                                               if k in ("epoch", "step")}}, tmp / FILES["adapter"])
        torch.save(vh, tmp / FILES["vision_head"])
        model_pt = {f"wan_model.{k}": v for k, v in wan_state.items()}
        model_pt |= {f"adapter.{k}": v for k, v in ad.items()} | {f"ar_vision_head.{k}": v for k, v in vh.items()}
        model_pt |= {k: v for k, v in extras.items() if k.startswith("visual_context_adapter.")}
        torch.save({"module": model_pt} if meta.get("model_pt_wrapped") else model_pt, tmp / FILES["transformer"])
        with open(tmp / FILES["special_tokens"], "wb") as f:
            pickle.dump(tokens, f)
        with open(tmp / FILES["null"], "wb") as f:
            pickle.dump(context, f)
        # VILA is frozen: the release's own checkpoint is linked when the export came from one, never copied
        vila = Path(meta["vlm_path"]).parent if meta.get("vlm_path") else None
        linked = vila is not None and (vila / "config.json").is_file() and Path(meta["vlm_path"]).name == "llm"
        if linked:
            (tmp / "ar_model").mkdir()
            os.symlink(vila.resolve(), tmp / "ar_model" / "checkpoint")
        (tmp / "NEXT_STEPS.txt").write_text(
            "Written by nexus (tools/export.py --format omnivideo) from " + str(export.resolve()) + ".\n"
            "The reference (Lumos-Custom/Lumos-Nexus) also needs, beside these folders:\n"
            + (f"  ar_model/checkpoint/   linked to the release's VILA checkpoint {vila.resolve()}\n" if linked else
               "  ar_model/checkpoint/   the release's VILA checkpoint (config.json, llm/, vision_tower/, "
               "mm_projector/)\n") +
            "  Wan2.1-T2V-14B/        the large generator as Wan-AI publishes it (video_generator.py looks for it "
            "at <models_dir>/Wan2.1-T2V-14B)\n")
    return out
