"""Clip sampling, buckets and corrupt-input handling of the stage-1 DataModule."""
import io
import json
import random
import tarfile

import numpy as np
import pytest
import torch

from nexus.data.clips import clip_indices
from nexus.data.datamodule import ShardDataModule
from nexus.data.shards import ShardIndex, write_shards
from nexus.errors import RunStopped
from nexus.data.stream import Bucket, SampleStream
from nexus.data.video import encode_mp4


def test_clip_indices_by_hand():
    assert clip_indices(20, 5, start="fixed") == [0, 1, 2, 3, 4]
    assert clip_indices(30, 5, 32, 16, start="fixed") == [0, 2, 4, 6, 8]           # 32 -> 16 fps: every 2nd
    assert clip_indices(30, 5, 30, 16, start="fixed") == [0, 2, 4, 6, 8]           # stride 1.875, rounded
    assert clip_indices(30, 9, 30, 16, start="fixed") == [0, 2, 4, 6, 8, 9, 11, 13, 15]
    assert clip_indices(8, 5, 32, 16) is None                                       # needs 9 frames
    starts = {clip_indices(40, 5, 32, 16, rng=random.Random(s))[0] for s in range(50)}
    assert min(starts) >= 0 and max(starts) <= 40 - 1 - 8 and len(starts) > 10     # random starts that fit
    with pytest.raises(ValueError, match="data.start='middle'"):
        clip_indices(10, 5, start="middle")


def counting_clip(n, value_step=6, size=32):
    """Frame k is a flat grey of brightness 10 + value_step * k: the decoded clip tells which frames it holds."""
    return np.stack([np.full((size, size, 3), 10 + value_step * k, np.uint8) for k in range(n)])


def write(tmp_path, samples, name="shard"):
    return write_shards(samples, tmp_path, prefix=name, maxcount=64)


def sample(key, frames, fps=32, caption="a grey square"):
    return {"__key__": key, "mp4": encode_mp4(frames, fps),
            "json": {"caption": caption, "fps": fps, "num_frames": len(frames)}}


def test_fps_sampling_and_value_range(tmp_path):
    write(tmp_path, [sample("a", counting_clip(33))])
    dm = ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, batch_size=1, num_workers=0,
                         target_fps=16, start="fixed")
    dm.setup("fit")
    raw = dm.dataset[0]["video"]
    assert raw.shape == (5, 16, 16, 3) and raw.dtype == torch.uint8          # uint8 through the workers
    video = dm.on_after_batch_transfer({"video": raw[None], "key": ["a"]}, 0)["video"][0]
    assert video.shape == (3, 5, 16, 16) and video.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1
    levels = ((video[0].mean((1, 2)) + 1) * 127.5).tolist()
    assert levels == pytest.approx([10 + 6 * k for k in (0, 2, 4, 6, 8)], abs=3)   # every 2nd frame: 32 -> 16 fps


def test_buckets_never_mix_shapes_and_agree_across_ranks(tmp_path):
    write(tmp_path, [sample(f"{i:03d}", counting_clip(9)) for i in range(12)])
    buckets = [{"num_frames": 5, "height": 16, "width": 16, "batch_size": 3, "weight": 1.0},
               {"num_frames": 9, "height": 32, "width": 16, "batch_size": 1, "weight": 1.0}]
    dm = ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, num_workers=0, buckets=buckets)
    dm.setup("fit")
    shapes = {(5, 16, 16): 3, (9, 32, 16): 1}
    streams = [SampleStream(dm.dataset, 1, __import__("nexus.data.datamodule", fromlist=["collate"]).collate,
                            rank=r, world_size=2, buckets=dm.buckets) for r in range(2)]
    its = [iter(s) for s in streams]
    seen_shapes = set()
    for _ in range(10):
        a, b = next(its[0]), next(its[1])
        sa, sb = tuple(a["video"].shape[1:4]), tuple(b["video"].shape[1:4])
        assert sa == sb and a["video"].shape[0] == shapes[sa]          # one shape per batch, on every rank
        seen_shapes.add(sa)
    assert seen_shapes == set(shapes)
    # the two ranks' positions in the global order tile it without overlap (so within a pass, no sample twice)
    pos = []
    for b in range(10):
        for s in streams:
            _, first, size = s.plan(b)
            pos += list(range(first, first + size))
    assert sorted(pos) == list(range(len(pos)))
    # resuming at batch 4 continues exactly where an unbroken stream was
    full = [s["key"] for s in __import__("itertools").islice(iter(streams[0]), 7)]
    resumed = SampleStream(dm.dataset, 1, streams[0].collate, rank=0, world_size=2, buckets=dm.buckets, start_batch=4)
    assert [s["key"] for s in __import__("itertools").islice(iter(resumed), 3)] == full[4:]


def test_corrupt_samples_are_skipped_and_counted(tmp_path, caplog):
    good = [sample(f"g{i}", counting_clip(9)) for i in range(6)]
    truncated = sample("trunc", counting_clip(9))
    truncated["mp4"] = truncated["mp4"][: len(truncated["mp4"]) // 3]
    not_video = {"__key__": "text", "mp4": b"this is not a video", "json": {"caption": "x", "fps": 32}}
    empty = sample("empty", counting_clip(9), caption="")
    write(tmp_path, good[:3] + [truncated, not_video, empty] + good[3:])
    dm = ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, batch_size=3, num_workers=0,
                         shuffle=False, start="fixed", max_bad_fraction=1.0)
    dm.setup("fit")
    from nexus.data.datamodule import collate
    it = iter(SampleStream(dm.dataset, 3, collate, shuffle=False))
    batches = [next(it) for _ in range(3)]
    keys = [k for b in batches for k in b["key"]]
    assert not {"trunc", "text", "empty"} & set(keys)
    assert all(b["video"].shape == (3, 5, 16, 16, 3) for b in batches)    # batches keep their size
    # every failed read is reported with its sample (a replacement may itself land on a bad sample: it counts
    # as a read again, not as another bad sample); the positions replaced are counted apart
    failed = caplog.text.count("skipping sample")
    assert batches[0]["failed_indices"] == [] and batches[0]["replaced"] == 0
    assert batches[1]["replaced"] == 3 and set(batches[1]["failed_indices"]) == {3, 4, 5}
    assert sum(len(b["failed_indices"]) for b in batches) == failed
    assert "empty caption" in caplog.text
    for b in batches:
        dm.on_after_batch_transfer(b, 0)
    assert (dm.samples_seen, dm.failed_reads, dm.bad_samples, dm.replaced) == (9, failed, 3, 3)
    assert dm.counts() == {"data/unreachable_samples": 0.0, "data/failed_reads": float(failed),
                           "data/bad_samples": 3.0, "data/replaced": 3.0}
    state = dm.state_dict()
    assert state == {"samples_seen": 9, "failed_reads": failed, "replaced": 3, "unreachable_samples": 0,
                     "bad": [3, 4, 5]}
    dm.max_bad_fraction = 0.2
    with pytest.raises(RunStopped, match=rf"{failed} of {failed + 12} reads failed \(3 distinct samples; .* > "
                                         rf"data.max_bad_fraction=0.2\)"):
        dm.on_after_batch_transfer(batches[0] | {"failed_indices": [], "replaced": 0}, 0)


def test_the_bad_fraction_applies_from_the_first_reads(tmp_path):
    """The rule is max(fraction x reads, 3): 3 failed reads never stop a run, a 4th does once the share is past."""
    write(tmp_path, [sample(f"g{i}", counting_clip(9)) for i in range(4)])
    dm = ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, batch_size=1, num_workers=0,
                         max_bad_fraction=0.01)
    batch = {"key": ["k"], "failed_indices": [], "replaced": 0}
    dm.on_after_batch_transfer(batch | {"failed_indices": [7, 7, 8], "replaced": 1}, 0)     # 3 of 4 reads
    with pytest.raises(RunStopped, match=r"4 of 6 reads failed \(2 distinct samples"):
        dm.on_after_batch_transfer(batch | {"failed_indices": [8], "replaced": 1}, 0)


@pytest.mark.parametrize("key,value,message", [("max_bad_fraction", -1, "data.max_bad_fraction=-1: a share"),
                                               ("max_bad_fraction", 1.5, "data.max_bad_fraction=1.5"),
                                               ("target_fps", 0, "data.target_fps=0: a frame rate > 0"),
                                               ("batch_size", 0, "data.batch_size=0 must be >= 1")])
def test_values_that_make_no_sense_are_refused(tmp_path, key, value, message):
    write(tmp_path, [sample("g", counting_clip(9))])
    with pytest.raises(ValueError, match=message):
        ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, **{key: value})


def test_damaged_shards_count_their_lost_samples(tmp_path, caplog):
    """Samples behind the damage are counted exactly from the manifest; too many stop the run at setup."""
    (path,) = write(tmp_path, [sample(f"{i:02d}", counting_clip(9)) for i in range(16)])
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    index = ShardIndex([path], on_error="skip")
    assert 0 < len(index) < 16 and index.unreachable == 16 - len(index)        # the damage made, exactly
    assert "of the 16 samples its manifest lists are readable" in index.bad_shards[0][1]
    kept = len(index)
    dm = ShardDataModule(path, num_frames=5, height=16, width=16, num_workers=0, max_bad_fraction=0.6)
    dm.setup("fit")
    assert dm.unreachable_samples == 16 - kept and dm.counts()["data/unreachable_samples"] == 16 - kept
    assert "damaged shard" in caplog.text
    strict = ShardDataModule(path, num_frames=5, height=16, width=16, num_workers=0, max_bad_fraction=0.01)
    with pytest.raises(RunStopped, match=rf"{16 - kept} samples are lost in 1 damaged shards"):
        strict.setup("fit")


def test_truncated_shard_is_reported_not_fatal(tmp_path):
    (path,) = write(tmp_path, [sample(f"{i}", counting_clip(9)) for i in range(4)])
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2 + 100])
    with pytest.raises((tarfile.TarError, OSError, ValueError, EOFError)):
        ShardIndex([path])
    index = ShardIndex([path], on_error="skip")
    assert index.bad_shards and index.bad_shards[0][0] == path
    assert 0 < len(index) < 4


@pytest.mark.parametrize("decoder,worker_type,workers", [("torchcodec", "thread", 2), ("torchcodec", "process", 2),
                                                          ("pyav", "thread", 2), ("pyav", "process", 1)])
def test_every_decoder_and_worker_type_gives_the_batches_of_no_workers(tmp_path, decoder, worker_type, workers):
    """The same batches (keys, shapes, buckets, frames within a grey level, failed reads) whatever decodes them
    and wherever: fps sampling from random starts, two bucket shapes (one resized), a corrupt sample, two ranks."""
    clips = [sample(f"{i:02d}", counting_clip(40, value_step=5)) for i in range(7)]
    clips[3]["mp4"] = clips[3]["mp4"][:200]                        # corrupt: replaced and counted
    write(tmp_path, clips)
    buckets = [{"num_frames": 5, "height": 16, "width": 16, "batch_size": 2, "weight": 1},
               {"num_frames": 9, "height": 32, "width": 32, "batch_size": 1, "weight": 1}]

    def batches(decoder, worker_type, workers, rank=0):
        dm = ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, num_workers=workers,
                             target_fps=16, buckets=buckets, seed=4, decoder=decoder, worker_type=worker_type,
                             decode_threads=1, max_bad_fraction=1.0)
        dm.setup("fit")
        dm.trainer = type("T", (), {"global_step": 3, "accumulate_grad_batches": 1, "global_rank": rank,
                                    "world_size": 2, "num_devices": 2})()      # resumed at step 3, rank `rank`
        it = iter(dm.train_dataloader())
        out = [next(it) for _ in range(8)]
        del it
        return out
    reference = batches("pyav", "process", 0)             # the loader as it was: PyAV, in the main process
    got = batches(decoder, worker_type, workers)
    assert [b["key"] for b in got] == [b["key"] for b in reference]
    assert [b["failed_indices"] for b in got] == [b["failed_indices"] for b in reference]
    assert {tuple(b["video"].shape) for b in got} == {(2, 5, 16, 16, 3), (1, 9, 32, 32, 3)}
    for a, b in zip(got, reference):
        assert a["video"].shape == b["video"].shape and (a["video"].int() - b["video"].int()).abs().max() <= 1
    other_rank = [b["key"] for b in batches(decoder, worker_type, workers, rank=1)]
    assert other_rank == [b["key"] for b in batches("pyav", "process", 0, rank=1)] != [b["key"] for b in got]


def test_worker_type_and_decoder_values_are_checked(tmp_path):
    write(tmp_path, [sample("g", counting_clip(9))])
    with pytest.raises(ValueError, match=r"data.worker_type='fork': choose one of \('thread', 'process'\)"):
        ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, worker_type="fork")
    with pytest.raises(ValueError, match=r"data.decoder='cv2': choose one of"):
        ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, decoder="cv2")
    with pytest.raises(ValueError, match=r"data.decode_threads='many'"):
        ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, decode_threads="many")


@pytest.mark.gpu
def test_nvdec_batches_are_on_the_gpu(tmp_path):
    write(tmp_path, [sample(f"{i}", counting_clip(20)) for i in range(4)])
    from nexus.data.decode import preflight
    try:
        preflight("torchcodec", "cuda")
    except ValueError as e:
        pytest.skip(f"NVDEC is not available here: {e}")
    got = {}
    for device in ("cpu", "cuda"):
        dm = ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, batch_size=2, num_workers=2,
                             target_fps=16, decode_device=device, seed=1)
        dm.setup("fit")
        it = iter(dm.train_dataloader())
        got[device] = [next(it) for _ in range(3)]
    for a, b in zip(got["cpu"], got["cuda"]):
        assert a["key"] == b["key"] and b["video"].is_cuda and b["video"].shape == (2, 5, 16, 16, 3)
        assert (a["video"].int() - b["video"].cpu().int()).abs().float().mean() < 3


def test_worker_processes_start_from_a_forkserver_not_a_fork(tmp_path):
    """A fork of a process that has decoded inherits FFmpeg's thread pools without their threads and can hang
    (nexus.data.video.worker_context); the loader's process workers must come from the forkserver."""
    write(tmp_path, [sample(f"{i:02d}", counting_clip(9)) for i in range(2)])
    dm = ShardDataModule(f"{tmp_path}/*.tar", num_frames=5, height=16, width=16, batch_size=1, num_workers=1,
                         worker_type="process", decoder="pyav")
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.multiprocessing_context.get_start_method() == "forkserver"
    batch = next(iter(loader))
    assert batch["video"].shape == (1, 5, 16, 16, 3)

