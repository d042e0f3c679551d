"""Footage-like benchmark clips (nexus.data.footage): deterministic, textured, moving, and costly to code like
real video, unlike the flat shapes clips."""
import numpy as np

from nexus.data.footage import footage_clip, footage_samples
from nexus.data.synthetic import synthetic_samples
from nexus.data.video import decode_mp4


def test_footage_is_deterministic_textured_and_moving():
    a, b = footage_clip(3, 9, 64, 96), footage_clip(3, 9, 64, 96)
    assert a.shape == (9, 64, 96, 3) and a.dtype == np.uint8 and (a == b).all()
    assert not (footage_clip(4, 9, 64, 96) == a).all()
    f = a.astype(np.float32)
    assert np.abs(np.diff(f, axis=2)).mean() > 8           # texture: neighbouring pixels differ (grain + detail)
    assert np.abs(f[-1] - f[0]).mean() > np.abs(f[1] - f[0]).mean()   # the camera moves over the clip


def test_footage_costs_far_more_bits_than_the_shapes_clips():
    footage = next(iter(footage_samples(1, 17, 128, 192)))
    shapes = next(iter(synthetic_samples(1, 17, 128, 192, seed=0)))
    assert len(footage["mp4"]) > 8 * len(shapes["mp4"])    # 93x at 81x480x832 (3.06 vs 0.033 MB)
    decoded = decode_mp4(footage["mp4"]).astype(np.float32)      # the sample holds clip 0
    psnr = lambda seed: 10 * np.log10(255 ** 2 / ((decoded - footage_clip(seed, 17, 128, 192)) ** 2).mean())  # noqa
    assert decoded.shape == (17, 128, 192, 3) and psnr(0) > 25 > 15 > psnr(1)   # (x264's bytes vary run to run)


def test_bench_data_runs_every_anchor_and_says_where_a_clip_time_goes(tmp_path, capsys):
    import importlib.util
    import json
    from helpers import ROOT
    spec = importlib.util.spec_from_file_location("bench_data", ROOT / "tools" / "bench_data.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "data.json"
    bench.main(["--frames", "9", "--height", "32", "--width", "32", "--workers", "1", "2", "--batches", "4",
                "--repeats", "2", "--consumer", "20", "--consumer-seconds", "0.5", "--out", str(out)])
    got = json.loads(out.read_text())
    assert got["source"] == "footage" and got["mb_per_clip"] > 0 and got["not_run"] == {}
    loops = [f"bare {n}" for n in ("pyav", "torchcodec", "decord")] + [
        f"DataModule {d}, {k}" for d in ("torchcodec", "pyav") for k in ("threads", "processes")]
    assert [(r["loop"], r["workers"]) for r in got["rows"]] == [(n, w) for n in loops for w in (1, 2)]
    for r in got["rows"]:
        assert len(r["runs"]) == 2 and r["min"] <= r["median"] <= r["max"] and r["min"] > 0
        best = max(x["median"] for x in got["rows"] if x["workers"] == r["workers"] and x["loop"].startswith("bare"))
        assert r["vs_best_bare"] == r["median"] / best
        one = next(x["median"] for x in got["rows"] if x["loop"] == r["loop"] and x["workers"] == 1)
        assert r["scaling"] == r["median"] / (r["workers"] * one)
    assert set(got["stage_s_per_clip"]) == {"torchcodec", "pyav"}
    assert set(got["stage_s_per_clip"]["pyav"]) == {"decode", "decode+rgb", "clip", "clip_resized", "hand_over"}
    assert all(v is not None for s in got["stage_s_per_clip"].values() for v in s.values())
    speeds = got["consumer"]["python_iterations_per_s"]
    assert got["consumer"]["clips_per_s"] == 20 and set(speeds) == {"alone", "thread", "process"}
    assert all(len(s["runs"]) == 2 and s["median"] > 0 for s in speeds.values())
    printed = capsys.readouterr().out
    assert "| DataModule torchcodec, threads | 2 |" in printed and "where one clip's time goes" in printed
