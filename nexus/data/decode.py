"""Training clips out of mp4 bytes: the chosen frames, resized to cover and centre-cropped, uint8 (T, H, W, 3).

Two decoders, one result (the same pixels at the shard's size, within 1 grey level after a resize;
tests/test_decode.py):
  torchcodec  (default) FFmpeg through torchcodec: seeks to the clip, converts only the frames the clip takes,
              into one tensor; it releases the GIL, so decode threads run in parallel.
  pyav        PyAV frame by frame.
Both resize with torch (uint8, antialiased bilinear) when the clip is not at the training size.
tools/bench_data.py measures both against bare loops of PyAV, torchcodec and decord (docs/data.md has the table):
on footage-like 480p clips the loader gives 1.37x PyAV's clips/s with torchcodec at 1 worker, 1.17x at 2.
"""
from __future__ import annotations

import functools
import os
from io import BytesIO
from typing import Callable

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import get_worker_info

DECODERS = ("torchcodec", "pyav")
DEVICES = ("cpu", "cuda")
FIX = ("install FFmpeg's shared libraries 4-7 (apt-get install ffmpeg, or conda install ffmpeg) and "
       "`pip install torchcodec` matching your torch (requirements.txt pins the one for torch 2.13), "
       "or set data.decoder=pyav")


def check_decoder(decoder: str) -> None:
    """Refuse an unknown decoder, or torchcodec where it cannot load, before any model or worker starts."""
    if decoder not in DECODERS:
        raise ValueError(f"data.decoder={decoder!r}: choose one of {DECODERS}")
    if decoder == "torchcodec":
        try:
            from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads FFmpeg: fails here when it is missing)
        except Exception as e:       # ImportError, or torchcodec's RuntimeError/OSError when FFmpeg will not load
            raise ValueError(f"data.decoder=torchcodec cannot load ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0][:200]}): {FIX}") from None


def check_device(device: str, decoder: str, worker_type: str, num_workers: int) -> None:
    """data.decode_device=cuda: NVDEC through torchcodec, in the training process (CUDA cannot run in forked
    DataLoader workers), on a machine with CUDA."""
    if device not in DEVICES:
        raise ValueError(f"data.decode_device={device!r}: choose one of {DEVICES}")
    if device == "cuda":
        if decoder != "torchcodec":
            raise ValueError(f"data.decode_device=cuda decodes with NVDEC through torchcodec: set "
                             f"data.decoder=torchcodec (it is {decoder!r})")
        if worker_type == "process" and num_workers > 0:
            raise ValueError("data.decode_device=cuda cannot decode in forked DataLoader processes: set "
                             "data.worker_type=thread (or data.num_workers=0)")
        if not torch.cuda.is_available():
            raise ValueError("data.decode_device=cuda: this machine has no CUDA device; set data.decode_device=cpu")


@functools.lru_cache(maxsize=1)
def _test_clip() -> bytes:
    """2 frames 16x16: black, then grey 200."""
    from nexus.data.video import encode_mp4
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    frames[1] = 200
    return encode_mp4(frames)


def preflight(decoder: str, device: str = "cpu") -> None:
    """Decode a 2-frame test clip as the loader will: a decoder that loads but cannot decode here (an FFmpeg
    without H.264, a torchcodec built without CUDA for decode_device=cuda) stops the run now with its reason,
    instead of every sample being counted as a bad read."""
    try:
        out = load_clip(_test_clip(), {}, 16, 16, lambda total: [0, 1], decoder, 1, device)
    except Exception as e:
        raise ValueError(f"data.decoder={decoder} cannot decode a test clip on {device} ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}): "
                         + (FIX if device == "cpu" else "NVDEC needs torchcodec's CUDA build and an FFmpeg with "
                            "NVDEC (torchcodec's README); or set data.decode_device=cpu")) from None
    if out.shape != (2, 16, 16, 3) or abs(int(out[1].float().mean()) - 200) > 8:
        raise ValueError(f"data.decoder={decoder} decoded a test clip on {device} wrongly (shape "
                         f"{tuple(out.shape)}, second frame's mean {float(out[1].float().mean()):.0f}, not 200)")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_per_decode(setting: int | str, workers: int, ranks_per_node: int = 1) -> int:
    """FFmpeg threads per decode. auto: this rank's share of the cores over its workers (clip-level parallelism
    across workers beats frame threads inside one decoder; tools/bench_data.py), at least 1; 0 is FFmpeg's own
    choice (all cores)."""
    if setting == "auto":
        return max(1, usable_cores() // max(1, ranks_per_node) // max(1, workers))
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ValueError(f"data.decode_threads={setting!r}: a number of threads >= 0 (0: FFmpeg decides) or auto")
    return setting


def cover(h0: int, w0: int, height: int, width: int) -> tuple[int, int]:
    """The size an h0 x w0 frame is scaled to so that it covers height x width, keeping its aspect ratio."""
    scale = max(height / h0, width / w0)
    return max(height, round(h0 * scale)), max(width, round(w0 * scale))


def shared_buffer(shape: tuple, dtype=torch.uint8) -> torch.Tensor:
    """An empty tensor, made directly in shared memory when in a DataLoader worker, so handing it to the main
    process copies nothing (share_memory_() on a tensor copies it; a 81x480x832 clip is 97 MB)."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    n = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
    return torch.empty(0, dtype=dtype).set_(torch.UntypedStorage._new_shared(n)).view(shape)


def resize_center_crop(frames: np.ndarray | torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 (T, H0, W0, 3) -> uint8 (T, height, width, 3): scale to cover (antialiased bilinear), then centre crop.
    The resize stays uint8 and channels-last, torch's vectorised path: 0.06 s for 81 frames 480x832 -> 352x610 on
    one core, against 0.85 s through float and 0.29 s for torchcodec's resize inside FFmpeg (within 1 grey level
    of both; tools/bench_data.py, docs/data.md)."""
    x = torch.as_tensor(frames)
    h0, w0 = x.shape[1:3]
    size = cover(h0, w0, height, width)
    if size != (h0, w0):
        y = x.permute(0, 3, 1, 2)
        if x.is_cuda:            # CUDA's antialiased resize takes floating point only
            y = F.interpolate(y.float(), size=size, mode="bilinear", antialias=True).round_().clamp_(0, 255).byte()
        else:
            y = F.interpolate(y, size=size, mode="bilinear", antialias=True, align_corners=False)
        x = y.permute(0, 2, 3, 1)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    if (top, left, x.shape[1], x.shape[2]) == (0, 0, height, width):
        return x if x.is_contiguous() else x.contiguous()
    return x[:, top: top + height, left: left + width].contiguous()


def pyav_frames(data: bytes, idx: list[int] | None, threads: int = 0):
    """Yield (frame number, uint8 (H, W, 3) RGB) for the frames in idx (sorted; all when None), decoding up to the
    last one and converting only those."""
    want = None if idx is None else set(idx)
    last = None if idx is None else idx[-1]
    seen = 0
    with av.open(BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        for frame in container.decode(stream):
            if want is None or seen in want:
                yield seen, frame.to_ndarray(format="rgb24")
            seen += 1
            if last is not None and seen > last:
                return
    if last is not None:
        raise ValueError(f"clip has {seen} frames, the clip needs frame {last}")
    if seen == 0:
        raise ValueError("clip has no frames")


def _pyav_clip(data: bytes, total: int | None, pick: Callable[[int], list[int]], height: int, width: int,
               threads: int) -> torch.Tensor:
    if total is None:                    # the json does not say: decode it all to count
        frames = np.stack([f for _, f in pyav_frames(data, None, threads)])
        return resize_center_crop(frames[pick(len(frames))], height, width)
    idx = pick(total)
    slots: dict[int, list[int]] = {}     # frame number -> the clip positions it fills (a frame may repeat)
    for k, n in enumerate(idx):
        slots.setdefault(n, []).append(k)
    clip = None
    for n, frame in pyav_frames(data, sorted(slots), threads):
        if clip is None:                 # at the training size, frames go straight into the clip (shared memory)
            same = frame.shape[:2] == (height, width)
            clip = shared_buffer((len(idx), height, width, 3)) if same else np.empty((len(idx), *frame.shape), np.uint8)
            view = clip.numpy() if same else clip    # numpy's frame copy is ~2x torch's per-frame copy_ here
        view[slots[n]] = frame
    return clip if isinstance(clip, torch.Tensor) else resize_center_crop(clip, height, width)


def _torchcodec_clip(data: bytes, meta: dict, pick: Callable[[int], list[int]], height: int, width: int,
                     threads: int, device: str = "cpu") -> torch.Tensor:
    from torchcodec.decoders import VideoDecoder

    # exact: frame numbers from a scan of the packets, as PyAV counts them; get_frames_at seeks to the first
    # wanted frame's keyframe and converts only the wanted frames. device cuda: NVDEC, frames on that GPU
    dec = VideoDecoder(data, dimension_order="NHWC", num_ffmpeg_threads=threads, seek_mode="exact", device=device)
    frames = dec.get_frames_at(pick(meta.get("num_frames") or dec.metadata.num_frames)).data
    return frames if frames.shape[1:3] == (height, width) else resize_center_crop(frames, height, width)


def load_clip(data: bytes, meta: dict, height: int, width: int, pick: Callable[[int], list[int]],
              decoder: str = "torchcodec", threads: int = 0, device: str = "cpu") -> torch.Tensor:
    """uint8 (T, height, width, 3) of the frames pick(total frames) chooses (ValueError when the clip is too
    short), scaled to cover and centre-cropped, on `device` (a CUDA device: NVDEC, torchcodec only).
    meta: the shard's json (num_frames spares a scan)."""
    if decoder == "torchcodec":
        return _torchcodec_clip(data, meta, pick, height, width, threads, device)
    return _pyav_clip(data, meta.get("num_frames"), pick, height, width, threads)
