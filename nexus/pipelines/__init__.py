"""UPFB as a diffusers pipeline (docs/sampling.md): `LumosNexusPipeline.from_pretrained(folder)(prompt)`.
Imported lazily, so that nexus.pipelines.placement (read by the memory plan) does not import diffusers' pipelines."""

__all__ = ["LumosNexusPipeline"]


def __getattr__(name):
    if name == "LumosNexusPipeline":
        from nexus.pipelines.lumos_nexus import LumosNexusPipeline
        return LumosNexusPipeline
    raise AttributeError(name)
