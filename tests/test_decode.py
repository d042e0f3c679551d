"""The clip decoders (nexus.data.decode): torchcodec and PyAV give the same frames for the same sampling (the
same pixels at the shard's size, within a grey level after a resize), against an independent full decode;
decord, the benchmark's third anchor, too; the settings are checked before anything starts."""
import sys
from io import BytesIO

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from nexus.data.decode import (check_decoder, check_device, cover, load_clip, preflight, resize_center_crop, shared_buffer,
                               threads_per_decode)
from nexus.data.footage import footage_clip
from nexus.data.video import decode_mp4, encode_mp4


@pytest.fixture(scope="module")
def clip():
    """A footage-like clip (texture, camera motion, grain) of 33 frames at 64x96: mp4 bytes."""
    return encode_mp4(footage_clip(5, 33, 64, 96), fps=16, crf=20)


@pytest.fixture(scope="module")
def keyframes():
    """40 frames with a keyframe every 8 and B-frames: picking frames late in it makes torchcodec seek."""
    buf = BytesIO()
    frames = footage_clip(6, 40, 64, 96)
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=16)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        s.options = {"crf": "20", "g": "8", "keyint_min": "8", "bf": "2"}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return buf.getvalue()


SAMPLINGS = {"consecutive": list(range(4, 21)), "strided": list(range(1, 33, 2)), "repeats": [0, 0, 1, 1, 2, 9, 32]}


@pytest.mark.parametrize("meta", [{"num_frames": 33, "height": 64, "width": 96}, {}], ids=["json", "no-json"])
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_decoders_give_the_frames_a_full_decode_gives(clip, sampling, meta):
    idx = SAMPLINGS[sampling]
    reference = torch.from_numpy(decode_mp4(clip)[idx])        # every frame decoded, then indexed
    seen = []
    for decoder in ("torchcodec", "pyav"):
        out = load_clip(clip, meta, 64, 96, lambda total: seen.append(total) or idx, decoder, threads=1)
        assert out.shape == (len(idx), 64, 96, 3) and out.dtype == torch.uint8
        d = (out.int() - reference.int()).abs()
        assert d.max() <= 1 and d.float().mean() < 0.01, (decoder, d.max(), d.float().mean())   # measured: 0, 0
    assert seen == [33, 33]           # both count the frames (from the json, or the file) the same


def float_cover_crop(frames: np.ndarray, h: int, w: int) -> torch.Tensor:
    """An independent reference: float antialiased bilinear to the covering size, rounded, centre crop."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).double()
    h0, w0 = frames.shape[1:3]
    s = max(h / h0, w / w0)
    size = (max(h, round(h0 * s)), max(w, round(w0 * s)))
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True).round().clamp(0, 255)
    top, left = (size[0] - h) // 2, (size[1] - w) // 2
    return x[:, :, top:top + h, left:left + w].permute(0, 2, 3, 1).to(torch.uint8)


def test_resized_clips_match_a_float_resize_and_crop(clip):
    """Both decoders resize in uint8 (torch's vectorised channels-last path): within a grey level of float."""
    idx = list(range(0, 33, 4))
    full = decode_mp4(clip)[idx]
    for h, w in ((48, 64), (32, 48), (64, 64), (96, 128)):    # crop across the width, half size, square, upscale
        expected = float_cover_crop(full, h, w)
        for decoder in ("torchcodec", "pyav"):
            out = load_clip(clip, {}, h, w, lambda total: idx, decoder, threads=1)
            assert out.shape == (len(idx), h, w, 3) and out.is_contiguous()
            d = (out.int() - expected.int()).abs()
            assert d.max() <= 1 and d.float().mean() < 0.5, (decoder, h, w, d.max(), d.float().mean())
        # the crop is centred: an off-centre crop of the same resize is far from it
        shifted = torch.roll(expected, 3, dims=2)
        assert (out.int() - shifted.int()).abs().float().mean() > 3


def test_seeking_keeps_frame_numbers_exact(keyframes):
    reference = torch.from_numpy(decode_mp4(keyframes))
    assert reference.shape[0] == 40
    for idx in ([27, 28, 29, 30], [33, 35, 37, 39], [2, 17, 31]):      # past one or several keyframes
        for decoder in ("torchcodec", "pyav"):
            out = load_clip(keyframes, {}, 64, 96, lambda total: idx, decoder, threads=1)
            assert (out.int() - reference[idx].int()).abs().max() <= 1, (decoder, idx)


def test_a_clip_shorter_than_its_sampling_is_an_error(clip):
    """A json claiming more frames than the file holds: each decoder's own error, which the stream counts as a
    failed read and replaces the sample for."""
    with pytest.raises(IndexError, match="Invalid frame index=35.*must be less than 33"):
        load_clip(clip, {"num_frames": 40}, 64, 96, lambda total: list(range(35, 40)), "torchcodec", threads=1)
    with pytest.raises(ValueError, match="clip has 33 frames, the clip needs frame 39"):
        load_clip(clip, {"num_frames": 40}, 64, 96, lambda total: list(range(35, 40)), "pyav", threads=1)


def test_decord_agrees_with_both(clip):
    decord = pytest.importorskip("decord")
    frames = decord.VideoReader(BytesIO(clip), ctx=decord.cpu(0), num_threads=1).get_batch(list(range(33))).asnumpy()
    d = np.abs(frames.astype(np.int16) - decode_mp4(clip).astype(np.int16))
    assert frames.shape == (33, 64, 96, 3) and d.mean() < 1.0 and d.max() <= 8, (d.mean(), d.max())


def test_settings_are_checked():
    with pytest.raises(ValueError, match=r"data.decoder='ffmpeg': choose one of \('torchcodec', 'pyav'\)"):
        check_decoder("ffmpeg")
    check_decoder("torchcodec"), check_decoder("pyav")
    cores = threads_per_decode("auto", 1)
    assert cores >= 1 and threads_per_decode("auto", 2 * cores) == 1 and threads_per_decode(0, 4) == 0
    assert threads_per_decode("auto", 1, ranks_per_node=2) == max(1, cores // 2)
    for bad in (-1, "4", 1.5, True):
        with pytest.raises(ValueError, match="data.decode_threads="):
            threads_per_decode(bad, 1)
    assert cover(480, 832, 352, 608) == (352, 610) and cover(1080, 1920, 480, 832) == (480, 853)


def test_torchcodec_that_cannot_load_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)     # as where torchcodec is not installed
    with pytest.raises(ValueError, match=r"data.decoder=torchcodec cannot load \(ModuleNotFoundError.*apt-get install ffmpeg"
                                         r".*or set data.decoder=pyav"):
        check_decoder("torchcodec")


class _Buffers(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        buf = shared_buffer((3, 4, 5, 3))
        buf.fill_(i)
        return buf, buf.is_shared()


def test_worker_buffers_are_made_in_shared_memory():
    assert not shared_buffer((2, 2)).is_shared()              # in the main process: a plain tensor
    for buf, shared in DataLoader(_Buffers(), batch_size=None, num_workers=1):
        assert shared and buf.is_shared() and buf.shape == (3, 4, 5, 3) and buf.dtype == torch.uint8
        assert (buf == buf.flatten()[0]).all()


def test_decode_device_is_checked_before_anything_starts():
    with pytest.raises(ValueError, match=r"data.decode_device='gpu': choose one of \('cpu', 'cuda'\)"):
        check_device("gpu", "torchcodec", "thread", 2)
    with pytest.raises(ValueError, match="NVDEC through torchcodec: set data.decoder=torchcodec"):
        check_device("cuda", "pyav", "thread", 2)
    with pytest.raises(ValueError, match="cannot decode in forked DataLoader processes: set data.worker_type=thread"):
        check_device("cuda", "torchcodec", "process", 2)
    check_device("cpu", "pyav", "process", 2)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device; set data.decode_device=cpu"):
            check_device("cuda", "torchcodec", "thread", 2)


def test_preflight_decodes_a_test_clip_and_names_what_cannot():
    for decoder in ("torchcodec", "pyav"):
        preflight(decoder)
    if not torch.cuda.is_available():      # torchcodec's CPU build loads, but cannot decode on cuda
        with pytest.raises(ValueError, match=r"data.decoder=torchcodec cannot decode a test clip on cuda \(RuntimeError: "
                                             r".*NVDEC needs torchcodec's CUDA build.*set data.decode_device=cpu"):
            preflight("torchcodec", "cuda")


@pytest.mark.gpu
def test_nvdec_gives_the_cpu_frames(clip):
    """data.decode_device=cuda: frames decoded by NVDEC on the GPU, within a few grey levels of the CPU decode
    (NVDEC's colour conversion is its own)."""
    try:
        preflight("torchcodec", "cuda")
    except ValueError as e:
        pytest.skip(f"NVDEC is not available here: {e}")
    idx = [0, 3, 4, 17, 32]
    gpu = load_clip(clip, {}, 48, 64, lambda total: idx, "torchcodec", 1, "cuda")
    cpu = load_clip(clip, {}, 48, 64, lambda total: idx, "torchcodec", 1)
    assert gpu.is_cuda and gpu.shape == cpu.shape == (5, 48, 64, 3) and gpu.dtype == torch.uint8
    d = (gpu.cpu().int() - cpu.int()).abs().float()
    assert d.mean() < 3 and d.max() <= 32, (d.mean(), d.max())
