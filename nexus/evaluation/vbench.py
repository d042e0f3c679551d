"""VBench-style dimensions as torchmetrics Metrics (METHOD.md, "VBench"). Videos are uint8 (B, T, H, W, 3).

temporal_flickering (exact VBench formula, no weights): per video (255 - mean_i mean|F_{i+1} - F_i|) / 255.
feature consistency (subject: DINO features, background: CLIP features): per video the mean over frames i >= 1
of (max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2, given any frame-feature function.
Each metric averages over the videos it has seen; torchmetrics syncs the sums across processes.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torchmetrics import Metric


def flicker_score(video: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> (255 - mean absolute difference of consecutive frames) / 255."""
    if video.shape[0] < 2:
        raise ValueError("temporal flickering needs at least 2 frames")
    x = video.float()
    return (255.0 - (x[1:] - x[:-1]).abs().mean()) / 255.0


def consistency_score(features: torch.Tensor) -> torch.Tensor:
    """(T, D) frame features -> VBench's subject/background consistency of one video."""
    if features.shape[0] < 2:
        raise ValueError("consistency needs at least 2 frames")
    f = F.normalize(features.float(), dim=-1)
    prev = (f[1:] * f[:-1]).sum(-1).clamp_min(0)
    first = (f[1:] * f[:1]).sum(-1).clamp_min(0)
    return ((prev + first) / 2).mean()


class _VideoMean(Metric):
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def score(self, video: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define score()")

    def update(self, videos: torch.Tensor) -> None:
        if videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
            raise ValueError(f"expected uint8 videos (B, T, H, W, 3), got {videos.dtype} {tuple(videos.shape)}")
        for v in videos:
            self.total += self.score(v).double()
            self.count += 1

    def compute(self) -> torch.Tensor:
        if self.count == 0:
            raise ValueError(f"{type(self).__name__}: no video was scored")
        return (self.total / self.count).float()


class TemporalFlickering(_VideoMean):
    """VBench-exact."""

    def score(self, video):
        return flicker_score(video)


class FeatureConsistency(_VideoMean):
    """Subject (DINO) or background (CLIP) consistency over the features `embed` gives for (T, H, W, 3) frames."""

    def __init__(self, embed: Callable[[torch.Tensor], torch.Tensor], **kwargs):
        super().__init__(**kwargs)
        self.embed = embed

    def score(self, video):
        return consistency_score(self.embed(video))
