"""The bare decode loops tools/bench_data.py measures the loader against: the first `frames` frames of a clip as
RGB, nothing else (each library's plain use), and the worker process that times one (a module of the library, so
that a forkserver's worker can import it)."""
from __future__ import annotations

import time
from io import BytesIO


def bare_pyav(data: bytes, frames: int, threads: int, convert: bool = True) -> None:
    import av
    with av.open(BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        for k, frame in enumerate(container.decode(stream)):
            if convert:
                frame.to_ndarray(format="rgb24")
            if k + 1 == frames:
                break


def bare_torchcodec(data: bytes, frames: int, threads: int) -> None:
    from torchcodec.decoders import VideoDecoder
    VideoDecoder(data, dimension_order="NHWC", num_ffmpeg_threads=threads).get_frames_in_range(0, frames)


def bare_decord(data: bytes, frames: int, threads: int) -> None:
    import decord
    decord.VideoReader(BytesIO(data), ctx=decord.cpu(0), num_threads=threads).get_batch(list(range(frames)))


ANCHORS = {"pyav": bare_pyav, "torchcodec": bare_torchcodec, "decord": bare_decord}


def bare_worker(name, clips, frames, threads, barrier, out):
    fn = ANCHORS[name]
    fn(clips[0], frames, threads)                              # warm: libraries loaded, caches filled
    barrier.wait()
    t0 = time.perf_counter()
    for data in clips:
        fn(data, frames, threads)
    out.put((t0, time.perf_counter()))
