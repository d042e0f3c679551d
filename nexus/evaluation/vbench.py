"""VBench-style dimensions as torchmetrics Metrics (METHOD.md, "VBench"). Videos are uint8 (B, T, H, W, 3).

temporal_flickering (exact VBench formula, no weights): per video (255 - mean_i mean|F_{i+1} - F_i|) / 255.
feature consistency (subject: DINO features, background: CLIP features): per video the mean over frames i >= 1
of (max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2, given any frame-feature function.
motion smoothness (proxy: VBench interpolates with AMT; here the interpolation is the mean of the two
neighbours, weight-free): (255 - mean |F_odd - (F_prev + F_next) / 2|) / 255 over the odd frames.
dynamic degree (VBench's rule; OpenCV Farneback flow stands in for RAFT): frames sampled every round(fps / 8),
per pair the mean of the top 5% flow magnitudes; a video is dynamic (1) if at least round(4 n / 16) of its n
frames' pairs exceed 6 min(H, W) / 256, else 0.
aesthetic quality: the LAION linear head on normalised CLIP (ViT-L/14) image embeddings, / 10, mean over frames.
CLIP text-video similarity: mean over frames of max(0, cos(image, text)); not a VBench dimension, reported
beside them. (torchmetrics' CLIPScore would do, but 1.9 breaks on transformers 5's get_*_features outputs.)
Each metric averages over the videos it has seen (torchmetrics syncs the sums across processes) and keeps this
process's per-video values in `per_video` for tables.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
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


def motion_smoothness_score(video: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3), T >= 3: each odd frame against the mean of its two neighbours."""
    if video.shape[0] < 3:
        raise ValueError("motion smoothness needs at least 3 frames")
    x = video.float()
    n = (x.shape[0] - 1) // 2 * 2 + 1                      # odd frames that have a next frame
    mid = (x[0:n - 2:2] + x[2:n:2]) / 2
    return (255.0 - (x[1:n - 1:2] - mid).abs().mean()) / 255.0


def top_flow_magnitude(a: torch.Tensor, b: torch.Tensor) -> float:
    """Farneback optical flow between two uint8 (H, W, 3) frames: mean of the top 5% magnitudes."""
    import cv2
    ga = cv2.cvtColor(a.cpu().numpy(), cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b.cpu().numpy(), cv2.COLOR_RGB2GRAY)
    flow = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    rad = np.sqrt((flow ** 2).sum(-1)).ravel()
    cut = max(1, int(rad.size * 0.05))
    return float(np.sort(rad)[::-1][:cut].mean())


def is_dynamic(magnitudes: list[float], min_side: int, num_frames: int) -> bool:
    """VBench's check: enough frame pairs move more than 6 px per 256 px of the shorter side."""
    thres, need = 6.0 * (min_side / 256.0), round(4 * (num_frames / 16.0))
    return sum(m > thres for m in magnitudes) >= need


class _VideoMean(Metric):
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.per_video: list[float] = []

    def score(self, video: torch.Tensor, prompt: str | None = None) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define score()")

    def update(self, videos: torch.Tensor, prompts: list[str] | None = None) -> None:
        if videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
            raise ValueError(f"expected uint8 videos (B, T, H, W, 3), got {videos.dtype} {tuple(videos.shape)}")
        for i, v in enumerate(videos):
            value = torch.as_tensor(self.score(v, None if prompts is None else prompts[i])).double().cpu()
            self.total += value.to(self.total.device)
            self.count += 1
            self.per_video.append(value.item())

    def reset(self) -> None:
        super().reset()
        self.per_video = []

    def compute(self) -> torch.Tensor:
        if self.count == 0:
            raise ValueError(f"{type(self).__name__}: no video was scored")
        return (self.total / self.count).float()


class TemporalFlickering(_VideoMean):
    """VBench-exact."""

    def score(self, video, prompt=None):
        return flicker_score(video)


class MotionSmoothness(_VideoMean):
    """Proxy (neighbour-mean interpolation instead of AMT)."""

    def score(self, video, prompt=None):
        return motion_smoothness_score(video)


class DynamicDegree(_VideoMean):
    """VBench's rule on OpenCV Farneback flow (proxy for RAFT); per video 0 or 1, the mean is the dynamic share."""

    def __init__(self, fps: float = 16.0, **kwargs):
        super().__init__(**kwargs)
        self.fps = fps

    def score(self, video, prompt=None):
        frames = video[::max(1, round(self.fps / 8))]
        mags = [top_flow_magnitude(a, b) for a, b in zip(frames[:-1], frames[1:])]
        return torch.tensor(float(is_dynamic(mags, min(video.shape[1:3]), len(frames))))


class FeatureConsistency(_VideoMean):
    """Subject (DINO) or background (CLIP) consistency over the features `embed` gives for (T, H, W, 3) frames."""

    def __init__(self, embed: Callable[[torch.Tensor], torch.Tensor], **kwargs):
        super().__init__(**kwargs)
        self.embed = embed

    def score(self, video, prompt=None):
        return consistency_score(self.embed(video))


class AestheticQuality(_VideoMean):
    """LAION head on normalised CLIP image embeddings / 10, mean over frames (VBench's aesthetic quality)."""

    def __init__(self, embed: Callable[[torch.Tensor], torch.Tensor], head: torch.nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.embed, self.head = embed, head

    def score(self, video, prompt=None):
        f = F.normalize(self.embed(video), dim=-1)
        with torch.no_grad():
            return (self.head(f.to(self.head.weight.dtype)).float().squeeze(-1) / 10).mean()


class TextVideoSimilarity(_VideoMean):
    """Mean over frames of max(0, cos(CLIP image embedding, CLIP text embedding)); needs the prompts."""

    def __init__(self, embed: Callable[[torch.Tensor], torch.Tensor], embed_text: Callable, **kwargs):
        super().__init__(**kwargs)
        self.embed, self.embed_text = embed, embed_text

    def score(self, video, prompt=None):
        if prompt is None:
            raise ValueError("clip text-video similarity needs the prompt of every video")
        img = F.normalize(self.embed(video), dim=-1)
        txt = F.normalize(self.embed_text([prompt]), dim=-1)
        return (img @ txt.T).clamp_min(0).mean()
