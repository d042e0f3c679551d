"""In-memory mp4 coding with PyAV: uint8 (T, H, W, 3) RGB frames <-> H.264 mp4 bytes."""
from __future__ import annotations

import contextlib
import os
import uuid
from io import BytesIO
from pathlib import Path
from typing import BinaryIO, Iterator

import av
import numpy as np


CRF = 12  # near-lossless: training clips should carry codec artefacts as little as possible


def encode_mp4(frames: np.ndarray, fps: int = 16, crf: int = CRF) -> bytes:
    """uint8 (T, H, W, 3) RGB -> mp4 (libx264, yuv420p) bytes; crf: x264's quality (lower: larger, closer)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T >= 1, got {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:  # yuv420p subsamples chroma 2x2, so x264 refuses odd sizes
        raise ValueError(f"height and width must be even for yuv420p, got {h}x{w}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    buf = BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())  # flush the frames x264 still holds for lookahead
    return buf.getvalue()


def iter_frames(data: bytes | str, num_frames: int | None = None, start: int = 0) -> Iterator[np.ndarray]:
    """Yield uint8 (H, W, 3) RGB frames [start, start + num_frames) (all from start when num_frames is None);
    ValueError when the clip ends first."""
    if start < 0 or (num_frames is not None and num_frames < 1):
        raise ValueError(f"need start >= 0 and num_frames >= 1, got start={start}, num_frames={num_frames}")
    stop = None if num_frames is None else start + num_frames
    source = BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else os.fspath(data)
    seen = 0
    with av.open(source, "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if seen >= start:
                yield frame.to_ndarray(format="rgb24")
            seen += 1
            if stop is not None and seen >= stop:
                return  # don't decode the rest of a long clip
    if stop is not None and seen < stop:
        raise ValueError(f"clip has {seen} frames, fewer than start + num_frames = {start} + {num_frames}")
    if seen <= start:
        raise ValueError(f"clip has {seen} frames, none from start={start}")


def decode_mp4(data: bytes | str, num_frames: int | None = None, start: int = 0) -> np.ndarray:
    """mp4 bytes or path -> uint8 (T, H, W, 3) RGB; frames [start, start + num_frames) when num_frames is given."""
    return np.stack(list(iter_frames(data, num_frames, start)))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Binary file that appears under `path` only once closed without error: it is written under a hidden
    temporary name in the same folder (so os.replace is an atomic rename on one filesystem), then renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:  # plain open, unlike mkstemp, keeps the umask's permissions
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: int = 16, crf: int = CRF) -> None:
    """Encode and write atomically: a crash mid-write leaves no truncated video under `path`."""
    data = encode_mp4(frames, fps, crf)  # encode first: a failing encode never touches the folder
    with atomic_write(path) as f:
        f.write(data)


def worker_context():
    """How every process that decodes starts (data-loader workers, the prepare and bench pools): from a clean
    forkserver, not a fork of a process that has decoded. A fork inherits FFmpeg's thread pools (PyAV's swscale
    slice threads) without their threads, and a worker then waits forever on one of their locks (it hung this
    project's suite; Python 3.14 makes forkserver Linux's default for such reasons). The server imports the data
    stack once, so a worker starts in a fraction of a second instead of importing torch again."""
    import multiprocessing
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["nexus.data.datamodule", "nexus.data.anchors"])   # torch, PyAV, Lightning
    return ctx
