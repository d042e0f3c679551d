"""write_shards -> expand_shards -> ShardIndex round trip, and the committed tiny clip shard."""
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from nexus.data.shards import ShardIndex, expand_shards, write_shards
from nexus.data.synthetic import synthetic_samples
from nexus.data.video import decode_mp4

ROOT = Path(__file__).resolve().parents[1]


def samples(n):
    for i in range(n):
        yield {"__key__": f"{i:06d}", "bin": bytes([i]) * (i + 1), "txt": f"caption {i}",
               "json": {"caption": f"clip {i}", "i": i}}


def test_round_trip(tmp_path):
    paths = write_shards(samples(10), tmp_path / "out", prefix="s", maxcount=4)
    assert [Path(p).name for p in paths] == ["s-000000.tar", "s-000001.tar", "s-000002.tar"]
    assert sorted(os.listdir(tmp_path / "out")) == ["manifest.json", "s-000000.tar", "s-000001.tar", "s-000002.tar"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"]     # what each should hold
    assert [(m["file"], m["samples"], len(m["keys"])) for m in manifest] == \
        [("s-000000.tar", 4, 4), ("s-000001.tar", 4, 4), ("s-000002.tar", 2, 2)]
    assert expand_shards(str(tmp_path / "out")) == paths
    assert expand_shards(str(tmp_path / "out" / "s-*.tar")) == paths
    assert expand_shards(str(tmp_path / "out" / "s-{000000..000002}.tar")) == paths
    assert expand_shards([paths[2], str(tmp_path / "out" / "s-00000[01].tar")]) == paths

    index = ShardIndex(paths)
    assert len(index) == 10 and index.keys == [f"{i:06d}" for i in range(10)]
    for i in (0, 5, 9, -1):
        s, j = index[i], i % 10
        assert s["__key__"] == f"{j:06d}" and s["__url__"] == paths[j // 4]
        assert s["bin"] == bytes([j]) * (j + 1)
        assert s["txt"] == f"caption {j}".encode()
        assert json.loads(s["json"]) == {"caption": f"clip {j}", "i": j}
    with pytest.raises(IndexError):
        index[10]


def test_synthetic_clips_through_shards(tmp_path):
    original = list(synthetic_samples(3, 4, 16, 16, seed=2))
    index = ShardIndex(expand_shards(write_shards(iter(original), tmp_path)))
    assert len(index) == 3
    for want, got in zip(original, (index[i] for i in range(3))):
        assert got["mp4"] == want["mp4"]
        assert json.loads(got["json"])["caption"] == want["json"]["caption"]
        assert decode_mp4(got["mp4"]).shape == (4, 16, 16, 3)


def test_index_key_rule_and_skips(tmp_path):
    """Keys follow webdataset: up to the first dot of the basename; directories and metadata are skipped."""
    path = tmp_path / "hand.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in [("a.features.safetensors", b"F"), ("a.JSON", b"{}"), ("__meta__", b"m"),
                           ("sub/b.mp4", b"V"), ("noext", b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        d = tarfile.TarInfo("sub")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
    index = ShardIndex([str(path)])
    assert index.keys == ["a", "sub/b"]
    assert index[0] == {"__key__": "a", "__url__": str(path), "features.safetensors": b"F", "json": b"{}"}
    assert index[1]["mp4"] == b"V"


def test_expand_shards_no_match(tmp_path):
    pattern = str(tmp_path / "nothing-{000..003}.tar")
    with pytest.raises(FileNotFoundError, match="matched no file") as err:
        expand_shards(pattern)
    assert pattern in str(err.value) and "glob" in str(err.value) and "brace" in str(err.value)
    with pytest.raises(FileNotFoundError, match="matched no file"):
        expand_shards(str(tmp_path))               # a directory without tars


def test_tiny_clip_shard():
    path = ROOT / "data/tiny/clips/shard-000000.tar"
    assert path.stat().st_size < 1_000_000
    index = ShardIndex(expand_shards(str(path.parent)))
    assert len(index) == 16
    s = index[7]
    meta = json.loads(s["json"])
    assert (meta["num_frames"], meta["height"], meta["width"]) == (9, 32, 32) and meta["caption"]
    assert decode_mp4(s["mp4"], num_frames=9).shape == (9, 32, 32, 3)


def test_failed_write_leaves_no_shard(tmp_path):
    def broken():
        yield from samples(5)
        yield {"__key__": "bad", "x": 3.5}            # not bytes / str / dict
    with pytest.raises(TypeError, match="bad"):
        write_shards(broken(), tmp_path, maxcount=4)
    assert os.listdir(tmp_path) == ["shard-000000.tar"]   # the complete first shard only, no temp file
    assert len(ShardIndex([str(tmp_path / "shard-000000.tar")])) == 4
