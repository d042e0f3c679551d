"""tools/prepare_shards.py: folder of videos + manifest -> shards, bad rows, reruns, CLI."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from nexus.data.prepare import TooManyBadSamples, prepare_shards, sample_key
from nexus.data.shards import ShardIndex, expand_shards
from nexus.data.synthetic import make_clip
from nexus.data.video import decode_mp4, write_mp4

ROOT = Path(__file__).resolve().parents[1]


def write_avi(path, frames, fps=8):
    """A non-mp4 container (MPEG-4 part 2 in AVI), to exercise the re-encode path."""
    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())


@pytest.fixture
def videos(tmp_path):
    """Six mp4 clips (5..10 frames, 32x32) and one .avi of 7 frames; returns (folder, manifest rows)."""
    d = tmp_path / "videos"
    (d / "sub").mkdir(parents=True)
    rows = []
    for i in range(6):
        frames, caption = make_clip(i, 5 + i, 32, 32)
        rel = f"sub/clip{i}.mp4" if i % 2 else f"clip{i}.mp4"
        write_mp4(d / rel, frames, fps=16)
        rows.append({"path": rel, "caption": caption})
    frames, caption = make_clip(99, 7, 32, 32)
    write_avi(d / "other.avi", frames)
    rows.append({"path": "other.avi", "caption": caption})
    return d, rows


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "caption", "reasoning_prompt", "fps"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def add_bad(d, rows):
    """A truncated mp4, a text file named .mp4, a missing file and an empty caption."""
    good = (d / "clip2.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(good[:len(good) // 2])
    (d / "notvideo.mp4").write_text("hello, I am not a video\n")
    return rows + [{"path": "truncated.mp4", "caption": "cut"}, {"path": "notvideo.mp4", "caption": "text"},
                   {"path": "nowhere.mp4", "caption": "gone"}, {"path": "clip3.mp4", "caption": "  "}]


def read_samples(out):
    index = ShardIndex(expand_shards(str(out / "shard-*.tar")))
    return {s["__key__"]: s for s in (index[i] for i in range(len(index)))}


def test_round_trip_csv(tmp_path, videos):
    d, rows = videos
    out = tmp_path / "out"
    summary = prepare_shards(d, write_csv(tmp_path / "m.csv", rows), out, workers=2, progress=False)
    assert summary["rows"] == summary["good"] == 7 and summary["bad"] == 0 and summary["shards"] == 1
    samples = read_samples(out)
    assert list(samples) == [sample_key(r["path"]) for r in rows]   # manifest order, stable keys
    for i, r in enumerate(rows):
        s = samples[sample_key(r["path"])]
        meta = json.loads(s["json"])
        assert meta["caption"] == r["caption"] and meta["source"] == r["path"]
        assert (meta["height"], meta["width"]) == (32, 32) and "reasoning_prompt" not in meta
        if r["path"].endswith(".mp4"):
            assert s["mp4"] == (d / r["path"]).read_bytes()   # kept as-is
            assert meta["num_frames"] == 5 + i and meta["fps"] == 16.0
        else:   # re-encoded to H.264 mp4
            assert meta["num_frames"] == 7 and meta["fps"] == 8.0
        assert decode_mp4(s["mp4"]).shape == (meta["num_frames"], 32, 32, 3)
    assert (out / "bad_samples.jsonl").read_text() == ""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shards"][0]["file"] == "shard-000000.tar" and manifest["shards"][0]["samples"] == 7


def test_jsonl_manifest_with_fps_and_reasoning_prompt(tmp_path, videos):
    d, rows = videos
    rows = [dict(r, fps=24, reasoning_prompt=f"think {i}") if i < 2 else r for i, r in enumerate(rows)]
    out = tmp_path / "out"
    summary = prepare_shards(d, write_jsonl(tmp_path / "m.jsonl", rows), out, progress=False)
    assert summary["good"] == 7
    meta = [json.loads(s["json"]) for s in read_samples(out).values()]
    assert [m["fps"] for m in meta[:3]] == [24.0, 24.0, 16.0]   # the manifest's fps wins
    assert meta[1]["reasoning_prompt"] == "think 1" and "reasoning_prompt" not in meta[2]


def test_bad_rows_are_skipped_and_reported(tmp_path, videos):
    d, rows = videos
    rows = add_bad(d, rows)
    out = tmp_path / "out"
    summary = prepare_shards(d, write_csv(tmp_path / "m.csv", rows), out, min_frames=6,
                             max_bad_fraction=0.5, progress=False)
    assert summary["rows"] == 11 and summary["good"] == 6 and summary["bad"] == 5
    assert summary["bad_by_reason"] == {"empty_caption": 1, "missing": 1, "too_short": 1, "unreadable": 2}
    bad = [json.loads(line) for line in (out / "bad_samples.jsonl").read_text().splitlines()]
    assert {b["path"]: b["reason"] for b in bad} == {
        "clip0.mp4": "too_short", "truncated.mp4": "unreadable", "notvideo.mp4": "unreadable",
        "nowhere.mp4": "missing", "clip3.mp4": "empty_caption"}
    assert len(read_samples(out)) == 6
    assert len(json.loads((out / "manifest.json").read_text())["bad"]) == 5


def test_too_many_bad_rows_fail_after_the_report(tmp_path, videos):
    d, rows = videos
    out = tmp_path / "out"
    with pytest.raises(TooManyBadSamples, match="--max-bad-fraction 0.05") as e:
        prepare_shards(d, write_csv(tmp_path / "m.csv", add_bad(d, rows)), out, progress=False)
    assert e.value.summary["bad"] == 4
    assert len((out / "bad_samples.jsonl").read_text().splitlines()) == 4
    assert not list(out.glob("*.tar"))   # nothing written from a manifest that needs fixing


def test_size_target_splits_and_rerun_writes_nothing(tmp_path, videos):
    d, rows = videos
    manifest = write_csv(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    mean = np.mean([(d / r["path"]).stat().st_size for r in rows])
    kw = dict(shard_size_mb=2.5 * mean / 2 ** 20, progress=False)
    first = prepare_shards(d, manifest, out, **kw)
    shards = sorted(out.glob("shard-*.tar"))
    assert first["shards"] == len(shards) >= 3 and first["shards_written"] == len(shards)
    assert len(read_samples(out)) == 7
    mtimes = {p.name: p.stat().st_mtime_ns for p in shards}

    again = prepare_shards(d, manifest, out, **kw)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")} == mtimes
    assert again["shards_written"] == 0 and again["shards_skipped"] == first["shards"]
    for k in ("rows", "good", "bad", "bad_by_reason", "shards", "total_mb"):
        assert again[k] == first[k]

    (out / "shard-000001.tar").unlink()   # as if killed while writing it: only that one is redone
    third = prepare_shards(d, manifest, out, **kw)
    assert third["shards_written"] == 1 and third["total_mb"] == first["total_mb"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")
            if p.name != "shard-000001.tar"} == {k: v for k, v in mtimes.items() if k != "shard-000001.tar"}

    with pytest.raises(ValueError, match="fresh --out"):   # a changed plan never mixes with old shards
        prepare_shards(d, write_csv(tmp_path / "m2.csv", rows[::-1]), out, **kw)


def test_cli(tmp_path, videos):
    d, rows = videos
    manifest = write_csv(tmp_path / "m.csv", add_bad(d, rows))

    def cli(*args):
        return subprocess.run([sys.executable, "tools/prepare_shards.py", "--videos", str(d), "--manifest",
                               str(manifest), "--out", str(tmp_path / "out"), "--no-progress", *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    r = cli()
    assert r.returncode != 0 and "--max-bad-fraction" in r.stderr, r.stderr
    r = cli("--max-bad-fraction", "0.5", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "rows 11: good 7, bad 4" in r.stdout and "written 1" in r.stdout
    assert len(read_samples(tmp_path / "out")) == 7


def test_prepared_shards_feed_the_datamodule(tmp_path, videos):
    """Folder of mp4s -> prepare_shards -> ShardDataModule: shapes, dtype, range, frame count, fps sampling."""
    import torch
    from nexus.data.datamodule import ShardDataModule
    from nexus.data.stream import SampleStream
    d, rows = videos
    # a 16 fps clip of 17 frames whose frame k has brightness 10 + 12 k
    ramp = np.stack([np.full((32, 48, 3), 10 + 12 * k, np.uint8) for k in range(17)])
    write_mp4(d / "ramp.mp4", ramp, fps=16)
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"path": "ramp.mp4", "caption": "a ramp of greys"}] + rows[:4])
    prepare_shards(d, manifest, tmp_path / "shards", progress=False)
    dm = ShardDataModule(f"{tmp_path}/shards/*.tar", num_frames=5, height=32, width=32, batch_size=1,
                         num_workers=0, target_fps=8, start="fixed", shuffle=False)   # 16 -> 8 fps: every 2nd frame
    dm.setup("fit")
    batch = next(iter(SampleStream(dm.dataset, 1, __import__("nexus.data.datamodule", fromlist=["collate"]).collate,
                                   shuffle=False)))
    assert batch["caption"] == ["a ramp of greys"] and batch["failed_indices"] == [] and batch["replaced"] == 0
    assert batch["video"].shape == (1, 5, 32, 32, 3) and batch["video"].dtype == torch.uint8   # 48 wide: cropped
    video = dm.on_after_batch_transfer(batch, 0)["video"]
    assert video.shape == (1, 3, 5, 32, 32) and video.min() >= -1 and video.max() <= 1
    levels = ((video[0, 0].mean((1, 2)) + 1) * 127.5).tolist()
    assert levels == pytest.approx([10 + 12 * k for k in (0, 2, 4, 6, 8)], abs=3)
    # the four other clips are too short for 5 frames at 8 fps from 16 fps (that needs 9): unusable
    dm2 = ShardDataModule(f"{tmp_path}/shards/*.tar", num_frames=5, height=32, width=32, num_workers=0,
                          target_fps=8, start="fixed")
    dm2.setup("fit")
    assert sum(dm2.dataset.fetch(i) is None for i in range(len(dm2.dataset))) == 4    # 5-8 frames < 9 needed


def test_an_empty_manifest_is_refused_before_anything_is_written(tmp_path, videos):
    empty = tmp_path / "empty.csv"
    empty.write_text("path,caption\n")
    with pytest.raises(ValueError, match=r"lists no videos \(a CSV needs a header line, then one row per video"):
        prepare_shards(videos[0], empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()
