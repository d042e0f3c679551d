"""A LumosNexusPipeline folder: model_index.json (diffusers' component entries, the pipeline's settings and
`_nexus_sources`, the four source folders of nexus.pipelines.parts), scheduler/, nexus.json (what made it), and the
trained parts that have no folder of their own (connector/, transformer/, null.safetensors: the export layout)."""
from __future__ import annotations

import importlib
from pathlib import Path

import torch

from nexus.models.loading import DTYPES, read_config
from nexus.provenance import git_state, now, write_json as _write_json
from nexus.pipelines import parts as P
from nexus.upfb.sampler import needs as strategy_needs

COMPONENTS = ("vae", "tokenizer", "text_encoder", "scheduler", "transformer", "transformer_2", "transformer_small",
              "connector", "vlm", "vlm_tokenizer")
SETTINGS = ("boundary_ratio", "text_len", "context_len", "prompt_recipe", "instruction")


def _dtype(torch_dtype) -> torch.dtype:
    if isinstance(torch_dtype, str):
        if torch_dtype not in DTYPES:
            raise ValueError(f"torch_dtype={torch_dtype!r}: choose one of {sorted(DTYPES)} or a torch dtype")
        return DTYPES[torch_dtype]
    return torch_dtype


def build(cls, sources: dict, torch_dtype=torch.bfloat16, strategy: str | None = None, scheduler="unipc",
          shift: float = 5.0, vlm_dtype=None, text_len: int | None = None, context_len: int | None = None,
          prompt_recipe: str | None = None, instruction: str | None = None, **components):
    """A pipeline from its source folders; `strategy` loads only the generators it runs, `components` are used as
    given instead of loading them. Settings not given come from the export's nexus.json, else the defaults."""
    from nexus.upfb.solver import make_scheduler
    unknown = [k for k in components if k not in COMPONENTS]
    if unknown:
        raise TypeError(f"LumosNexusPipeline.from_pretrained got unexpected argument(s) {unknown}; sources are "
                        f"{P.SOURCES}, components {COMPONENTS}")
    dtype = _dtype(torch_dtype)
    need = strategy_needs(strategy) if strategy else (True, bool(sources.get("large")))
    export = Path(sources["small"]) if sources.get("small") else None
    info = P.export_info(export)
    loaded = P.load_parts(sources["wan"], sources.get("small"), sources.get("large"), sources.get("vlm"), dtype,
                          need, _dtype(vlm_dtype) if vlm_dtype else None) if not _all_given(components, need) else {}
    loaded.update(components)
    if isinstance(scheduler, str):
        scheduler = make_scheduler(scheduler, shift)
    pipe = cls(scheduler=scheduler, **{k: loaded.get(k) for k in COMPONENTS if k != "scheduler"},
               boundary_ratio=P.boundary_ratio(sources.get("large")) if loaded.get("transformer_2") is not None
               else None,
               text_len=text_len or info.get("text_len") or 512, context_len=context_len or info.get("context_len")
               or 2560, prompt_recipe=prompt_recipe or info.get("prompt_recipe") or "chat_template",
               **({"instruction": instruction} if instruction else {}))
    pipe.null = P.null_features(export, info) if need[0] else None
    pipe.sources, pipe.info = {k: sources.get(k) for k in P.SOURCES}, info
    return pipe


def _all_given(components: dict, need: tuple[bool, bool]) -> bool:
    base = all(components.get(k) is not None for k in ("vae", "tokenizer", "text_encoder"))
    return base and (not need[0] or components.get("transformer_small") is not None) and \
        (not need[1] or components.get("transformer") is not None)


def load_pipeline(cls, folder: str | Path, **kwargs):
    """from_pretrained: the folder's sources (overridable by `wan=`, `small=`, `large=`, `vlm=`), its scheduler/ and
    settings, then `build`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: pass a LumosNexusPipeline folder (save_pretrained, "
                                f"tools/export.py) or a stage-1 export")
    sources = P.index_sources(folder)
    for k in P.SOURCES:
        if k in kwargs:
            sources[k] = kwargs.pop(k)
    if not sources.get("wan"):
        raise ValueError(f"{folder} names no small Wan folder (the VAE and UMT5): pass wan=<Wan2.1-T2V-1.3B folder>")
    record = read_config(folder / "model_index.json") if (folder / "model_index.json").is_file() else {}
    if "scheduler" not in kwargs and (folder / "scheduler" / "scheduler_config.json").is_file():
        library, name = record.get("scheduler") or ("diffusers", read_config(
            folder / "scheduler" / "scheduler_config.json")["_class_name"])
        kwargs["scheduler"] = getattr(importlib.import_module(library), name).from_pretrained(folder / "scheduler")
    for key in ("text_len", "context_len", "prompt_recipe", "instruction"):
        if key not in kwargs and record.get(key) is not None:
            kwargs[key] = record[key]
    return build(cls, sources, **kwargs)


def save_pipeline(pipe, out: Path) -> None:
    """save_pretrained. Frozen parts are referenced by their source folders; a connector or small generator with no
    source is written here in the export layout, and `small` then names this folder."""
    from safetensors.torch import save_file
    out.mkdir(parents=True, exist_ok=True)
    sources = dict(pipe.sources)
    for part, source in (("vae", "wan"), ("text_encoder", "wan"), ("transformer", "large"), ("vlm", "vlm")):
        if getattr(pipe, part) is not None and not sources.get(source):
            raise ValueError(f"pipe.{part} came from no folder, so save_pretrained cannot name it: build the pipeline "
                             f"with {source}=<folder> (its weights are referenced, not copied)")
    null_here = pipe.connector is not None and not sources.get("small") and pipe.null is not None
    if pipe.connector is not None and not sources.get("small"):
        (out / "connector").mkdir(exist_ok=True)
        _write_json(out / "connector" / "config.json", pipe.connector.config.to_dict())
        save_file({k: v.contiguous() for k, v in pipe.connector.state_dict().items()},
                  str(out / "connector" / "model.safetensors"))
        if pipe.transformer_small is not None:
            pipe.transformer_small.save_pretrained(out / "transformer", safe_serialization=True)
        if pipe.null is not None:
            save_file({k: v.contiguous() for k, v in pipe.null.items()}, str(out / "null.safetensors"))
        sources["small"] = str(out)
    components = {k: v for k, v in dict(pipe.config).items() if isinstance(v, (list, tuple)) and len(v) == 2}
    settings = {k: pipe.config[k] for k in SETTINGS}
    write_index(out, sources, components, settings, pipe.scheduler, pipe.info, null_here)


def write_index(out: Path, sources: dict, components: dict, settings: dict, scheduler, info: dict | None = None,
                null_here: bool = False) -> None:
    """model_index.json, scheduler/ and nexus.json of a pipeline folder (save_pretrained, tools/export.py)."""
    scheduler.save_pretrained(out / "scheduler")
    record = {"_class_name": "LumosNexusPipeline", "_diffusers_version": _diffusers_version(), **components,
              **settings, "_nexus_sources": {k: P.relative_to(sources.get(k), out) for k in P.SOURCES}}
    _write_json(out / "model_index.json", record)
    info = read_config(out / "nexus.json") if (out / "nexus.json").is_file() else dict(info or {})
    if null_here:
        info["null"] = "null.safetensors"
    info["pipeline"] = {"sources": record["_nexus_sources"], "code": git_state(), "saved": now()}
    _write_json(out / "nexus.json", info)


def export_index(out: Path, info: dict, large: str | None = None, vlm: str | None = None,
                 scheduler: str = "unipc", shift: float = 5.0) -> None:
    """The pipeline index of a stage-1 export (tools/export.py): `small` is the folder itself, the frozen parts are
    the folders the run trained with (nexus.json's wan_path, vlm_path) and, when given, the large generator."""
    from nexus.upfb.solver import make_scheduler
    sched = make_scheduler(scheduler, shift)
    module = type(sched).__module__
    scheduler_library = "diffusers" if module.startswith("diffusers.") else module     # as diffusers records it
    hf = ("transformers", "AutoTokenizer")
    components = {"vae": ("diffusers", "AutoencoderKLWan"), "tokenizer": hf,
                  "text_encoder": ("transformers", "UMT5EncoderModel"),
                  "scheduler": (scheduler_library, type(sched).__name__),
                  "transformer": ("diffusers", "WanTransformer3DModel") if large else (None, None),
                  "transformer_2": ("diffusers", "WanTransformer3DModel") if P.boundary_ratio(large) else (None, None),
                  "transformer_small": ("diffusers", "WanTransformer3DModel"),
                  "connector": ("nexus.models.connector", "OmniConnector"),
                  "vlm": ("transformers", "AutoModel"), "vlm_tokenizer": hf}
    settings = {"boundary_ratio": P.boundary_ratio(large), "text_len": info.get("text_len", 512),
                "context_len": info.get("context_len", 2560),
                "prompt_recipe": info.get("prompt_recipe", "chat_template"), "instruction": info.get("instruction")
                or _default_instruction()}
    write_index(out, {"wan": info.get("wan_path"), "small": str(out), "large": large,
                      "vlm": vlm or info.get("vlm_path")}, components, settings, sched, info)


def _default_instruction() -> str:
    from nexus.models.understanding import INSTRUCTION
    return INSTRUCTION


def _diffusers_version() -> str:
    import diffusers
    return diffusers.__version__
