"""Data loading speed: clips/s and MB/s of the stage-1 DataModule (decode in workers, clip sampling, resize,
[-1, 1]) with 1, 2, ... workers, against a bare PyAV decode loop over the same files; table + JSON.

  python tools/bench_data.py                                   # footage-like 81x480x832 clips (~3 MB), in a temp dir
  python tools/bench_data.py --shards '/data/clips/*.tar' --workers 1 2 8 --batches 64
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus.data.datamodule import ShardDataModule  # noqa: E402
from nexus.data.shards import ShardIndex, expand_shards, write_shards  # noqa: E402
from nexus.data.footage import footage_samples  # noqa: E402
from nexus.data.synthetic import synthetic_samples  # noqa: E402
from nexus.data.video import decode_mp4  # noqa: E402
from nexus.shapes import check_clip_shape  # noqa: E402


def bare_decode(index: ShardIndex, frames: int, n: int) -> tuple[float, int]:
    """Clips/s and bytes of a plain loop: read the mp4 bytes and decode the frames, nothing else."""
    t0, nbytes = time.perf_counter(), 0
    for i in range(n):
        data = index[i % len(index)]["mp4"]
        nbytes += len(data)
        decode_mp4(data, num_frames=frames)
    return n / (time.perf_counter() - t0), nbytes


def stage_seconds(index: ShardIndex, frames: int, height: int, width: int, n: int) -> dict:
    """Seconds per clip of each stage, in this process: PyAV's decode alone, + the colour conversion to RGB,
    + the copy into the clip buffer (decode_into, what a worker does for a clip of the shard's size), and the
    resize + centre crop a clip of another size would add (to 3/4 of the size here)."""
    from io import BytesIO

    import av
    from nexus.data.datamodule import decode_into, resize_center_crop

    def decode(convert: bool):
        for i in range(n):
            with av.open(BytesIO(index[i % len(index)]["mp4"])) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for k, frame in enumerate(container.decode(stream)):
                    if convert:
                        frame.to_ndarray(format="rgb24")
                    if k + 1 == frames:
                        break

    def load():
        for i in range(n):
            decode_into(index[i % len(index)]["mp4"], 0, frames, height, width)
    clip = decode_into(index[0]["mp4"], 0, frames, height, width).numpy()
    small = (height * 3 // 4 // 16 * 16, width * 3 // 4 // 16 * 16)
    out = {}
    for name, fn in (("decode", lambda: decode(False)), ("decode+rgb", lambda: decode(True)), ("decode_into", load),
                     ("resize_crop", lambda: [resize_center_crop(clip, *small) for _ in range(n)])):
        t0 = time.perf_counter()
        fn()
        out[name] = (time.perf_counter() - t0) / n
    return out


def datamodule_rate(shards, frames, height, width, workers: int, n: int) -> float:
    dm = ShardDataModule(shards, num_frames=frames, height=height, width=width, batch_size=1, num_workers=workers,
                         target_fps=None, start="fixed")
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    next(it)                                   # worker start-up is not throughput
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", default=None, help="default: 8 synthetic clips written to a temporary folder")
    p.add_argument("--clips", choices=("footage", "shapes"), default="footage",
                   help="synthetic clips: footage (texture, camera motion, grain: ~3 MB per 480p clip, decodes like "
                        "real video) or shapes (flat colours, 0.02 MB)")
    p.add_argument("--frames", type=int, default=81)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=832)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, default=16)
    p.add_argument("--out", default="bench/data.json")
    a = p.parse_args(argv)
    check_clip_shape(a.frames, a.height, a.width, keys=("--frames", "--height", "--width"))
    shards = a.shards
    if shards is None:
        tmp = tempfile.mkdtemp(prefix="nexus-bench-data-")
        make = footage_samples if a.clips == "footage" else synthetic_samples
        write_shards(make(8, a.frames, a.height, a.width, seed=0), tmp, maxcount=8)
        shards = f"{tmp}/*.tar"
    index = ShardIndex(expand_shards(shards))
    bare, nbytes = bare_decode(index, a.frames, a.batches)
    mb_per_clip = nbytes / a.batches / 1e6
    stages = stage_seconds(index, a.frames, a.height, a.width, min(a.batches, 8))
    rows = []
    for w in a.workers:
        rate = datamodule_rate(shards, a.frames, a.height, a.width, w, a.batches)
        rows.append({"workers": w, "clips_per_s": rate, "mb_per_s": rate * mb_per_clip,
                     "per_worker_vs_bare": rate / w / bare})
    result = {"shape": [a.frames, a.height, a.width], "clips": len(index), "source": a.shards or a.clips,
              "mb_per_clip": mb_per_clip,
              "bare_decode_clips_per_s": bare, "datamodule": rows, "stage_s_per_clip": stages}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nbare PyAV decode loop: {bare:.2f} clips/s ({bare * mb_per_clip:.1f} MB/s, {mb_per_clip:.2f} MB/clip)")
    print("\n| workers | clips/s | MB/s | per worker / bare decode |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['clips_per_s']:.2f} | {r['mb_per_s']:.1f} | {r['per_worker_vs_bare']:.2f} |")
    one = next((r for r in rows if r["workers"] == 1), None)
    hand_over = 1 / one["clips_per_s"] - stages["decode_into"] if one else None
    result["hand_over_s_per_clip"] = hand_over
    out.write_text(json.dumps(result, indent=2))
    print("\nwhere a clip's time goes (this process; hand-over: 1 worker's s/clip minus decode_into):")
    print("| decode | colour conversion | copy into the clip buffer | resize + crop (other size) | hand-over |\n"
          "|---|---|---|---|---|")
    print(f"| {stages['decode']:.3f} s | {stages['decode+rgb'] - stages['decode']:.3f} s | "
          f"{stages['decode_into'] - stages['decode+rgb']:.3f} s | {stages['resize_crop']:.3f} s | "
          + (f"{hand_over:.3f} s |" if hand_over is not None else "n/a |"))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
