"""The VBench-style dimensions as one suite: which can be scored with the networks given (and which are
unavailable, with the reason), each value labelled `exact` or `proxy`, and VBench's normalisation and
Quality / Semantic / Total aggregation (METHOD.md, "VBench")."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nexus.evaluation import vbench
from nexus.evaluation.networks import (clip_image_embeds, clip_text_embeds, dino_features, load_clip, load_dino,
                                       load_linear_head)

# VBench's normalisation constants (min, max) and weights; quality dimensions first.
QUALITY = {"subject_consistency": (0.1462, 1.0, 1.0), "background_consistency": (0.2615, 1.0, 1.0),
           "temporal_flickering": (0.6293, 1.0, 1.0), "motion_smoothness": (0.706, 0.9975, 1.0),
           "dynamic_degree": (0.0, 1.0, 0.5), "aesthetic_quality": (0.0, 1.0, 1.0),
           "imaging_quality": (0.0, 1.0, 1.0)}
SEMANTIC = {"object_class": (0.0, 1.0), "multiple_objects": (0.0, 1.0), "human_action": (0.0, 1.0),
            "color": (0.0, 1.0), "spatial_relationship": (0.0, 1.0), "scene": (0.0, 0.8222),
            "appearance_style": (0.0009, 0.2855), "temporal_style": (0.0, 0.364), "overall_consistency": (0.0, 0.364)}
EXTRA = ("clip_text_similarity",)        # scored and logged, not part of VBench's aggregation
TEMPORAL = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
            "dynamic_degree")             # compare frames: nothing to score on a single frame
NETWORKS = ("clip", "clip_large", "dino", "aesthetic_head")


@dataclass
class Suite:
    metrics: dict[str, vbench._VideoMean]
    labels: dict[str, str]                                  # name -> "exact" | "proxy"
    unavailable: dict[str, str] = field(default_factory=dict)   # name -> why

    def update(self, videos: torch.Tensor, prompts: list[str]) -> None:
        for m in self.metrics.values():
            m.update(videos, prompts)

    def compute(self) -> dict[str, float]:
        return {k: m.compute().item() for k, m in self.metrics.items()}

    def reset(self) -> None:
        for m in self.metrics.values():
            m.reset()

    def per_video(self) -> list[dict[str, float]]:
        names = list(self.metrics)
        rows = zip(*(self.metrics[k].per_video for k in names))
        return [dict(zip(names, r)) for r in rows]


def build_suite(networks: dict | None = None, fps: float = 16.0, device="cpu", dtype=torch.float32,
                only: list[str] | None = None, num_frames: int | None = None) -> Suite:
    """Every dimension the given networks allow. `networks` maps clip / clip_large / dino / aesthetic_head to
    local folders or files (None or missing: the dimensions that need it are reported unavailable). Bad folders
    raise at once, before any video is read."""
    networks = dict(networks or {})
    unknown = set(networks) - set(NETWORKS)
    if unknown:
        raise KeyError(f"unknown feature network(s) {sorted(unknown)}; known: {', '.join(NETWORKS)}")
    wanted = set(only or (*QUALITY, *EXTRA))
    unknown = wanted - set(QUALITY) - set(EXTRA)
    if unknown:
        raise KeyError(f"unknown dimension(s) {sorted(unknown)}; known: {', '.join((*QUALITY, *EXTRA))}")
    metrics, labels, missing = {}, {}, {}
    if num_frames == 1:       # text-to-image samples (num_frames=1)
        missing.update({k: "single-frame samples have no temporal dimension" for k in TEMPORAL if k in wanted})
        wanted -= set(TEMPORAL)

    def need(name: str, key: str) -> bool:
        if name in wanted and not networks.get(key):
            missing[name] = f"no {key} network given (metrics.networks.{key}=<local folder or file>)"
        return name in wanted and bool(networks.get(key))

    if "temporal_flickering" in wanted:
        metrics["temporal_flickering"], labels["temporal_flickering"] = vbench.TemporalFlickering(), "exact"
    if "motion_smoothness" in wanted:
        metrics["motion_smoothness"], labels["motion_smoothness"] = vbench.MotionSmoothness(), "proxy"
    if "dynamic_degree" in wanted:
        metrics["dynamic_degree"], labels["dynamic_degree"] = vbench.DynamicDegree(fps=fps), "proxy"
    if need("subject_consistency", "dino"):
        dino = load_dino(networks["dino"], device, dtype)
        metrics["subject_consistency"] = vbench.FeatureConsistency(lambda v: dino_features(dino, v))
        labels["subject_consistency"] = "exact" if dino.matches("dino") else "proxy"
    clip = load_clip(networks["clip"], device, dtype) if networks.get("clip") else None
    if need("background_consistency", "clip"):
        metrics["background_consistency"] = vbench.FeatureConsistency(lambda v: clip_image_embeds(clip, v))
        labels["background_consistency"] = "exact" if clip.matches("clip_b32") else "proxy"
    if need("clip_text_similarity", "clip"):
        metrics["clip_text_similarity"] = vbench.TextVideoSimilarity(lambda v: clip_image_embeds(clip, v),
                                                                     lambda t: clip_text_embeds(clip, t))
        labels["clip_text_similarity"] = "proxy"
    if need("aesthetic_quality", "clip_large") and need("aesthetic_quality", "aesthetic_head"):
        large = clip if networks["clip_large"] == networks.get("clip") else load_clip(networks["clip_large"],
                                                                                      device, dtype)
        head = load_linear_head(networks["aesthetic_head"], large.model.config.projection_dim, device)
        metrics["aesthetic_quality"] = vbench.AestheticQuality(lambda v: clip_image_embeds(large, v), head)
        labels["aesthetic_quality"] = "exact" if large.matches("clip_l14") else "proxy"
    if "imaging_quality" in wanted:
        missing["imaging_quality"] = ("MUSIQ (SPAQ) is not among this project's dependencies; score imaging quality "
                                      "with VBench itself")
    for m in metrics.values():
        m.to(device)
    return Suite(metrics, labels, missing)


def normalise(name: str, raw: float) -> float:
    lo, hi = (QUALITY[name][:2] if name in QUALITY else SEMANTIC[name])
    return (raw - lo) / (hi - lo)


def aggregate(raw: dict[str, float]) -> dict:
    """VBench's scores over the dimensions present: normalised values, Quality = weighted mean of the quality
    dimensions (dynamic degree weight 0.5; all seven: sum / 6.5), Semantic = mean of the semantic ones,
    Total = (4 Quality + Semantic) / 5 (only with both). `complete` says whether every dimension was there."""
    norm = {k: normalise(k, v) for k, v in raw.items() if k in QUALITY or k in SEMANTIC}
    q = {k: v for k, v in norm.items() if k in QUALITY}
    s = [v for k, v in norm.items() if k in SEMANTIC]
    quality = sum(QUALITY[k][2] * v for k, v in q.items()) / sum(QUALITY[k][2] for k in q) if q else None
    semantic = sum(s) / len(s) if s else None
    total = (4 * quality + semantic) / 5 if quality is not None and semantic is not None else None
    return {"normalised": norm, "quality": quality, "semantic": semantic, "total": total,
            "complete": {"quality": len(q) == len(QUALITY), "semantic": len(s) == len(SEMANTIC)}}
