"""mp4 coding round-trips and the synthetic clip generator."""
import os

import numpy as np
import pytest

from nexus.data.synthetic import make_clip, synthetic_samples
from nexus.data.video import decode_mp4, encode_mp4, write_mp4


def smooth_clip(t=8, h=32, w=48):
    """A drifting colour gradient: what x264 at high quality should reproduce closely."""
    y, x = np.mgrid[0:h, 0:w]
    frames = [np.stack([x * 4 + 3 * i, y * 6 + 20, 60 + 2 * x + 2 * y + 5 * i], -1) for i in range(t)]
    return np.stack(frames).astype(np.uint8)


def test_mp4_round_trip():
    clip = smooth_clip()
    data = encode_mp4(clip, fps=16)
    assert data[4:8] == b"ftyp"
    out = decode_mp4(data)
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - clip).mean() < 3.0
    # flat shapes with hard edges: exact away from the edges, small error overall
    shapes = make_clip(0, 9, 32, 32)[0]
    err = np.abs(decode_mp4(encode_mp4(shapes)).astype(int) - shapes)
    assert err.mean() < 4.0 and np.median(err) <= 1


def test_decode_window_and_too_short():
    clip = smooth_clip(t=8)
    data = encode_mp4(clip)
    full, part = decode_mp4(data), decode_mp4(data, num_frames=3, start=4)
    assert part.shape == (3, 32, 48, 3)
    np.testing.assert_array_equal(part, full[4:7])
    with pytest.raises(ValueError, match="has 8 frames"):
        decode_mp4(data, num_frames=6, start=4)


def test_encode_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        encode_mp4(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_mp4(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="even"):
        encode_mp4(np.zeros((2, 15, 16, 3), np.uint8))


def test_write_mp4_atomic(tmp_path):
    clip = smooth_clip(t=4)
    path = tmp_path / "clip.mp4"
    write_mp4(path, clip, fps=8)
    assert os.listdir(tmp_path) == ["clip.mp4"]          # the temporary name is gone
    assert decode_mp4(str(path)).shape == clip.shape
    with pytest.raises(ValueError):
        write_mp4(tmp_path / "bad.mp4", clip[:, :15], fps=8)
    assert os.listdir(tmp_path) == ["clip.mp4"]          # a failed write leaves nothing behind


def test_synthetic_deterministic_and_moving():
    a, cap_a = make_clip(3, 9, 32, 32)
    b, cap_b = make_clip(3, 9, 32, 32)
    c, cap_c = make_clip(4, 9, 32, 32)
    assert a.shape == (9, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert cap_a == cap_b
    assert not np.array_equal(a, c)
    for seed in range(8):
        frames, caption = make_clip(seed, 9, 32, 32)
        shape = (frames != frames[:, :1, :1]).any(-1)               # pixels differing from the background
        assert shape.any(axis=(1, 2)).all(), "the shape is visible in every frame"
        centroids = np.array([np.argwhere(m).mean(0) for m in shape])
        assert np.linalg.norm(centroids[-1] - centroids[0]) > 3 or "bounces" in caption
        assert np.abs(np.diff(centroids, axis=0)).sum() > 10, caption   # it really moves
        assert caption.startswith("a ") and caption.endswith("background")


def test_synthetic_captions_mention_colour_or_paraphrase():
    captions = [make_clip(s, 2, 16, 16)[1] for s in range(60)]
    assert any("the colour of" in c for c in captions)
    assert any("the colour of" not in c for c in captions)
    for c in captions:
        if "red" in c.split():
            assert "square" in c or "circle" in c


def test_synthetic_samples_layout():
    samples = list(synthetic_samples(3, 5, 16, 24, fps=12, seed=1))
    assert [s["__key__"] for s in samples] == ["000000", "000001", "000002"]
    meta = samples[0]["json"]
    assert meta["fps"] == 12 and (meta["num_frames"], meta["height"], meta["width"]) == (5, 16, 24)
    assert decode_mp4(samples[0]["mp4"]).shape == (5, 16, 24, 3)
    again = list(synthetic_samples(3, 5, 16, 24, fps=12, seed=1))
    assert [s["json"]["caption"] for s in again] == [s["json"]["caption"] for s in samples]
