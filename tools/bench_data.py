"""Data loading speed: the stage-1 DataModule (decode in workers, clip sampling, resize, hand-over) against bare
decode loops of PyAV, torchcodec and decord over the same files, each at 1, 2, ... workers; table + JSON.

Every row runs W processes (the DataModule: W loader workers) with FFmpeg threads = cores / W (data.decode_threads
auto), and reports clips/s (median and range over --repeats), the ratio to the best bare loop at the same W,
and the scaling against W x its 1-worker rate. Then where one clip's time goes, per decoder.

  python tools/bench_data.py                                   # footage-like 81x480x832 clips (~3 MB), in a temp dir
  python tools/bench_data.py --shards '/data/clips/*.tar' --workers 1 2 8 --batches 64
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402
from nexus.data.anchors import ANCHORS, bare_pyav, bare_worker  # noqa: E402
from nexus.shapes import check_clip_shape  # noqa: E402


def load_libraries() -> None:
    """The data stack (torch, the decoders, Lightning), imported once the flags are checked."""
    global WORKER_TYPES, ShardDataModule, DECODERS, worker_context, check_decoder, load_clip, threads_per_decode
    global usable_cores
    global footage_samples, ShardIndex, expand_shards, write_shards, synthetic_samples
    from nexus.data.datamodule import WORKER_TYPES, ShardDataModule
    from nexus.data.decode import DECODERS, check_decoder, load_clip, threads_per_decode, usable_cores
    from nexus.data.video import worker_context
    from nexus.data.footage import footage_samples
    from nexus.data.shards import ShardIndex, expand_shards, write_shards
    from nexus.data.synthetic import synthetic_samples


PLURAL = {"thread": "threads", "process": "processes"}


def missing(name: str) -> str | None:
    """Why an anchor cannot run here (None: it can)."""
    try:
        if name == "torchcodec":
            check_decoder("torchcodec")
        elif name == "decord":
            import decord  # noqa: F401
        return None
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"


def bare_rate(name: str, mp4s: list[bytes], frames: int, workers: int, n: int, threads: int) -> float:
    """clips/s of `workers` processes running the bare loop together over n clips in all."""
    ctx = worker_context()          # not a fork of this process, which has decoded (nexus.data.video)
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    share = [[mp4s[i % len(mp4s)] for i in range(w, n, workers)] for w in range(workers)]
    procs = [ctx.Process(target=bare_worker, args=(name, share[w], frames, threads, barrier, out))
             for w in range(workers)]
    for p in procs:
        p.start()
    spans = [out.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    return n / (max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans))


def batches(shards, frames, height, width, decoder: str, worker_type: str, workers: int, threads: int):
    """The DataModule's batches (one clip each, the first frames), after each worker's start-up."""
    dm = ShardDataModule(shards, num_frames=frames, height=height, width=width, batch_size=1, num_workers=workers,
                         target_fps=None, start="fixed", decoder=decoder, decode_threads=threads,
                         worker_type=worker_type)
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    for _ in range(max(1, workers)):           # each worker's start-up is not throughput
        next(it)
    return it


def datamodule_rate(shards, frames, height, width, decoder: str, worker_type: str, workers: int, n: int,
                    threads: int) -> float:
    it = batches(shards, frames, height, width, decoder, worker_type, workers, threads)
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t0)


def consumer_rate(shards, frames, height, width, worker_type: str | None, clips_per_s: float, seconds: float,
                  threads: int) -> float:
    """Iterations/s of a GIL-bound Python loop in the main thread (a training loop's Python side) that takes a batch
    every 1 / clips_per_s seconds from a 1-worker loader (None: no loader). Thread workers share the main
    process's GIL, process workers do not: this shows what that costs the training loop."""
    it = batches(shards, frames, height, width, "torchcodec", worker_type, 1, threads) if worker_type else None
    n, taken, t0 = 0, 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(10_000):
            n += 1
        if it is not None and taken < elapsed * clips_per_s:
            next(it)
            taken += 1
    return n / elapsed


def per_clip(fn, n: int) -> float:
    fn(0)
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n


def stage_seconds(mp4s, metas, frames, height, width, decoder, threads, n) -> dict:
    """Seconds per clip in this process: the bare decode to RGB, the DataModule's clip at the shard's size, and
    at 3/4 of it (resize + centre crop), plus PyAV's decode without the colour conversion."""
    small = (height * 3 // 4 // 16 * 16, width * 3 // 4 // 16 * 16)
    pick = lambda total: list(range(frames))  # noqa: E731
    out = {"decode+rgb": per_clip(lambda i: ANCHORS[decoder](mp4s[i % len(mp4s)], frames, threads), n),
           "clip": per_clip(lambda i: load_clip(mp4s[i % len(mp4s)], metas[i % len(mp4s)], height, width, pick,
                                                decoder, threads), n),
           "clip_resized": per_clip(lambda i: load_clip(mp4s[i % len(mp4s)], metas[i % len(mp4s)], *small, pick,
                                                        decoder, threads), n)}
    if decoder == "pyav":
        out["decode"] = per_clip(lambda i: bare_pyav(mp4s[i % len(mp4s)], frames, threads, convert=False), n)
    return out


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main(argv=None) -> None:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", default=None, help="default: 8 synthetic clips written to a temporary folder")
    p.add_argument("--clips", choices=("footage", "shapes"), default="footage",
                   help="synthetic clips: footage (texture, camera motion, grain: ~3 MB per 480p clip, decodes like "
                        "real video) or shapes (flat colours, 0.03 MB)")
    p.add_argument("--frames", type=checks.positive_int, default=81)
    p.add_argument("--height", type=checks.positive_int, default=480)
    p.add_argument("--width", type=checks.positive_int, default=832)
    p.add_argument("--workers", type=checks.positive_int, nargs="+", default=None,
                   help="default: 1, 2 and the core count")
    p.add_argument("--decoders", nargs="+", choices=checks.choices_of("nexus.data.decode", "DECODERS"),
                   default=None, metavar="DECODER", help="the DataModule's data.decoder values to measure (%(choices)s; "
                                                         "default: all)")
    p.add_argument("--worker-types", nargs="+", choices=checks.choices_of("nexus.data.datamodule", "WORKER_TYPES"),
                   default=None, metavar="TYPE", help="the DataModule's data.worker_type values to measure "
                                                      "(%(choices)s; default: all)")
    p.add_argument("--decode-threads", default="auto", type=checks.auto_or_positive_int,
                   help="FFmpeg threads per decode, as data.decode_threads (auto: cores / workers; 1 shows scaling)")
    p.add_argument("--batches", type=checks.positive_int, default=16, help="clips per measurement")
    p.add_argument("--repeats", type=checks.positive_int, default=3, help="measurements per row (median and range)")
    p.add_argument("--consumer", type=checks.nonnegative_float, default=0, metavar="CLIPS_PER_S",
                   help="also time a GIL-bound main-thread loop taking this many clips/s from 1 thread / process "
                        "worker (FFmpeg threads 1), against the loop alone; 0: skip")
    p.add_argument("--consumer-seconds", type=checks.positive_float, default=8)
    p.add_argument("--out", default="bench/data.json")
    a = p.parse_args(argv)
    check_clip_shape(a.frames, a.height, a.width, keys=("--frames", "--height", "--width"))
    out = checks.output_file("--out", a.out)
    load_libraries()
    a.decoders = a.decoders or list(DECODERS)
    a.worker_types = a.worker_types or list(WORKER_TYPES)
    for d in a.decoders:
        check_decoder(d)
    threads = lambda w: threads_per_decode(a.decode_threads, w)  # noqa: E731  (data.decode_threads for w workers)
    threads(1)                                                   # a bad --decode-threads is refused now
    cores = usable_cores()
    workers = sorted(set(a.workers or [1, 2, cores]))
    shards = a.shards
    if shards is None:
        tmp = tempfile.mkdtemp(prefix="nexus-bench-data-")
        make = footage_samples if a.clips == "footage" else synthetic_samples
        write_shards(make(8, a.frames, a.height, a.width, seed=0), tmp, maxcount=8)
        shards = f"{tmp}/*.tar"
    index = ShardIndex(expand_shards(shards))
    samples = [index[i] for i in range(min(len(index), 64))]
    mp4s = [s["mp4"] for s in samples]
    metas = [json.loads(s["json"]) if "json" in s else {} for s in samples]
    mb_per_clip = sum(map(len, mp4s)) / len(mp4s) / 1e6

    rows, skipped = [], {}
    for name in ANCHORS:
        why = missing(name)
        if why:
            skipped[name] = why
            continue
        for w in workers:
            rows.append({"loop": f"bare {name}", "workers": w, **summary(
                [bare_rate(name, mp4s, a.frames, w, a.batches, threads(w)) for _ in range(a.repeats)])})
            print(f"bare {name}, {w} worker(s): {rows[-1]['median']:.2f} clips/s", flush=True)
    for d in a.decoders:
        for kind in a.worker_types:
            for w in workers:
                rows.append({"loop": f"DataModule {d}, {PLURAL[kind]}", "workers": w, **summary(
                    [datamodule_rate(shards, a.frames, a.height, a.width, d, kind, w, a.batches, threads(w))
                     for _ in range(a.repeats)])})
                print(f"{rows[-1]['loop']}, {w}: {rows[-1]['median']:.2f} clips/s", flush=True)
    for r in rows:
        same = [x["median"] for x in rows if x["workers"] == r["workers"] and x["loop"].startswith("bare")]
        one = next(x["median"] for x in rows if x["loop"] == r["loop"] and x["workers"] == min(workers))
        r["threads"] = threads(r["workers"])
        r["vs_best_bare"] = r["median"] / max(same) if same else None
        r["scaling"] = r["median"] / (one * r["workers"] / min(workers))
    stages = {}
    for d in a.decoders:
        stages[d] = stage_seconds(mp4s, metas, a.frames, a.height, a.width, d, threads(1), min(a.batches, 8))
        one = next((r["median"] for r in rows if r["loop"] == f"DataModule {d}, processes" and r["workers"] == 1),
                   None)
        stages[d]["hand_over"] = 1 / one - stages[d]["clip"] if one else None
    consumer = {}
    if a.consumer > 0:
        for kind in (None, *WORKER_TYPES):
            consumer[kind or "alone"] = summary([consumer_rate(shards, a.frames, a.height, a.width, kind, a.consumer,
                                                               a.consumer_seconds, 1) for _ in range(a.repeats)])
    result = {"shape": [a.frames, a.height, a.width], "clips": len(index), "source": a.shards or a.clips,
              "mb_per_clip": mb_per_clip, "cores": cores, "decode_threads": a.decode_threads, "batches": a.batches,
              "repeats": a.repeats,
              "rows": rows, "not_run": skipped, "stage_s_per_clip": stages,
              "consumer": {"clips_per_s": a.consumer, "python_iterations_per_s": consumer} if consumer else None}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))

    print(f"\n{len(index)} clips of {a.frames}x{a.height}x{a.width}, {mb_per_clip:.2f} MB each; {cores} cores; "
          f"median (range) of {a.repeats} x {a.batches} clips")
    print("\n| loop | workers | FFmpeg threads | clips/s | vs best bare loop, same workers | scaling vs 1 worker |"
          "\n|---|---|---|---|---|---|")
    for r in rows:
        vs = f"{r['vs_best_bare']:.2f}" if r["vs_best_bare"] else "n/a"
        print(f"| {r['loop']} | {r['workers']} | {r['threads']} | {r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f}) "
              f"| {vs} | {r['scaling']:.2f} |")
    for name, why in skipped.items():
        print(f"| bare {name} | not run: {why} | | | | |")
    print("\nwhere one clip's time goes (this process, 1 worker's threads; hand-over: 1 process worker's s/clip minus "
          "the clip):")
    print("| decoder | decode to RGB (bare) | clip at the shard's size | clip at 3/4 size (resize + crop) | hand-over |"
          "\n|---|---|---|---|---|")
    for d, s in stages.items():
        hand = f"{s['hand_over']:.3f} s" if s["hand_over"] is not None else "n/a"
        extra = f" (decode alone {s['decode']:.3f} s)" if "decode" in s else ""
        print(f"| {d} | {s['decode+rgb']:.3f} s{extra} | {s['clip']:.3f} s | {s['clip_resized']:.3f} s | {hand} |")
    if consumer:
        print(f"\na GIL-bound main-thread loop taking {a.consumer} clips/s from 1 worker (M iterations/s; "
              f"relative to the loop alone):\n| loader | M it/s | vs alone |\n|---|---|---|")
        for kind, c in consumer.items():
            print(f"| {kind} | {c['median'] / 1e6:.1f} ({c['min'] / 1e6:.1f}-{c['max'] / 1e6:.1f}) | "
                  f"{c['median'] / consumer['alone']['median']:.2f} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
