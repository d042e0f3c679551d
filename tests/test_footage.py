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
    decoded = decode_mp4(footage["mp4"]).astype(np.float32)      # the sample holds clip 0 (x264's bytes vary by
    psnr = lambda seed: 10 * np.log10(255 ** 2 / ((decoded - footage_clip(seed, 17, 128, 192)) ** 2).mean())  # noqa
    assert decoded.shape == (17, 128, 192, 3) and psnr(0) > 25 > 15 > psnr(1)    # run with its threads)
