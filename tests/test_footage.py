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
    assert len(footage["mp4"]) > 8 * len(shapes["mp4"])    # 11x here; 130x at 81x480x832 (3.1 vs 0.024 MB)
    decoded = decode_mp4(footage["mp4"]).astype(np.float32)      # the sample holds clip 0
    psnr = lambda seed: 10 * np.log10(255 ** 2 / ((decoded - footage_clip(seed, 17, 128, 192)) ** 2).mean())  # noqa
    assert decoded.shape == (17, 128, 192, 3) and psnr(0) > 25 > 15 > psnr(1)   # (x264's bytes vary run to run)


def test_bench_data_reports_where_a_clip_time_goes(tmp_path):
    import importlib.util
    import json
    from helpers import ROOT
    spec = importlib.util.spec_from_file_location("bench_data", ROOT / "tools" / "bench_data.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "data.json"
    bench.main(["--frames", "9", "--height", "32", "--width", "32", "--workers", "1", "--batches", "2",
                "--out", str(out)])
    row = json.loads(out.read_text())
    assert row["source"] == "footage" and row["mb_per_clip"] > 0 and row["bare_decode_clips_per_s"] > 0
    assert set(row["stage_s_per_clip"]) == {"decode", "decode+rgb", "decode_into", "resize_crop"}
    assert all(v > 0 for v in row["stage_s_per_clip"].values()) and row["hand_over_s_per_clip"] is not None
