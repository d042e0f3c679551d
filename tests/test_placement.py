"""The sampler's placement (sampling.offload / sampling.encoders): which models sit on the device in each phase,
and that moving them changes no video."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers import ROOT  # noqa: F401  (sys.path for nexus)
from nexus.data.video import decode_mp4
from nexus.inference.launch import sample
from nexus.inference.module import BridgeModule
from nexus.pipelines.placement import resident
from test_sample import base, compose_sample, stage1_ckpt, stage1_export  # noqa: F401  (fixtures)


def test_resident_models_by_phase():
    assert resident("encode", "model", "device") == {"umt5", "vlm", "connector"}
    assert resident("sample", "model", "device") == {"small", "large"}          # one expert at a time
    assert resident("decode", "model", "device") == {"vae"}
    assert resident("encode", "group", "cpu") == set()                           # the reference's t5_cpu
    assert resident("sample", "none", "device") == {"small", "large", "large_2", "vae", "connector"}
    assert resident("encode", "none", "device") == {"small", "large", "large_2", "vae", "connector", "umt5", "vlm"}
    assert resident("encode", "none", "cpu") == {"small", "large", "large_2", "vae"}
    with pytest.raises(ValueError, match="sampling.offload='disk'"):
        BridgeModule("a", "b", "c", offload="disk")


@pytest.mark.parametrize("bad", ["sampling.offload=disk", "sampling.small_device=gpu9", "sampling.attention=flashy"])
def test_a_bad_placement_or_speed_value_creates_no_folder(tmp_path, tiny_models, bad):
    with pytest.raises(ValueError, match=bad.split("=")[0]):
        sample(compose_sample(*base(tmp_path, tiny_models, "prompt=a red square", bad)))
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def a14b(tmp_path, tiny_models):
    """A Wan2.2-A14B-style large folder: a second, different expert below boundary_ratio * 1000."""
    folder = tmp_path / "a14b"
    shutil.copytree(tiny_models["wan_large"], folder)
    shutil.copytree(Path(tiny_models["wan"]) / "transformer", folder / "transformer_2")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline", "boundary_ratio": 0.875}))
    return folder


def test_every_placement_writes_the_same_videos(tmp_path, tiny_models, a14b, stage1_export):
    videos = {}
    for offload, encoders, small_device in (("none", "device", "same"), ("model", "device", "same"),
                                            ("group", "device", "same"), ("model", "cpu", "same"),
                                            ("model", "device", "cpu")):     # the small generator in a 2nd thread
        (path,) = sample(compose_sample(*base(tmp_path, tiny_models, "prompt=a red square", f"paths.large={a14b}",
                                              f"small.export={stage1_export}", f"sampling.offload={offload}",
                                              f"sampling.encoders={encoders}", f"sampling.small_device={small_device}",
                                              f"run.name={offload}-{encoders}-{small_device}")))
        videos[offload, encoders, small_device] = decode_mp4(path)
    first = videos["none", "device", "same"]
    assert first.std() > 0
    for key, v in videos.items():
        assert (v == first).all(), key


def test_the_experts_take_turns_under_model_offload(tmp_path, tiny_models, a14b):
    m = BridgeModule(tiny_models["wan"], str(a14b), str(tmp_path / "o"), num_frames=5, height=32, width=32,
                     num_steps=4, dtype="fp32", bridge={"strategy": "large_only"}, progress=False)
    m.configure_model()
    placement, swaps = m.placement(), []
    real = placement.swap

    def recording(pipe, model):           # the real swap still runs
        swaps.append("large" if model is pipe.transformer else "large_2")
        real(pipe, model)
    placement.swap = recording
    from nexus.inference.prompts import Prompt
    m.predict_step([Prompt("a", "a cat")])
    # boundary 0.875 x 1000: the first expert above timestep 875, the second below; each swap call is one step
    assert len(swaps) == 4 and swaps[0] == "large" and swaps[-1] == "large_2"
    assert swaps == sorted(swaps, key=["large", "large_2"].index)     # one hand-over


def test_offload_is_not_a_setting_of_the_folder(tmp_path, tiny_models):
    """Videos made under one offload are reused under another (they are the same, tested above); the encoders'
    device is a setting (CPU and GPU round the prompt features differently)."""
    args = base(tmp_path, tiny_models, "prompt=a red square", "bridge.strategy=large_only", "run.name=x")
    (path,) = sample(compose_sample(*args, "sampling.offload=none"))
    mtime = Path(path).stat().st_mtime_ns
    sample(compose_sample(*args, "sampling.offload=model"))
    assert Path(path).stat().st_mtime_ns == mtime          # not sampled again
    from nexus.errors import UserError
    with pytest.raises(UserError, match="sampling.encoders"):
        sample(compose_sample(*args, "sampling.encoders=cpu"))


@pytest.mark.gpu
def test_model_offload_keeps_one_expert_on_the_gpu(tmp_path, tiny_models, a14b):
    """On a GPU: in the sample phase, offload=model holds exactly one expert fewer than offload=none."""
    from nexus.inference.prompts import Prompt
    held, expert = {}, None
    for offload in ("none", "model"):
        m = BridgeModule(tiny_models["wan"], str(a14b), str(tmp_path / offload), num_frames=5, height=32, width=32,
                         num_steps=2, dtype="fp32", bridge={"strategy": "large_only"}, progress=False,
                         offload=offload)
        m.configure_model()
        m._device = torch.device("cuda")
        base_bytes = torch.cuda.memory_allocated()
        m.place("sample")
        held[offload] = torch.cuda.memory_allocated() - base_bytes
        expert = sum(p.numel() * p.element_size() for p in m.large_2.parameters())
        m.predict_step([Prompt("a", "a cat")])
        assert Path(m.video_path("a")).is_file()
        del m
        torch.cuda.empty_cache()
    assert held["none"] - held["model"] >= expert


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_the_small_generator_on_a_second_gpu_writes_the_same_video(tmp_path, tiny_models, a14b):
    from nexus.inference.prompts import Prompt
    out = {}
    for where in ("same", "cuda:1"):
        m = BridgeModule(tiny_models["wan"], str(a14b), str(tmp_path / where.replace(":", "")), num_frames=5,
                         height=32, width=32, num_steps=3, dtype="fp32", progress=False, small_device=where)
        m.configure_model()
        m._device = torch.device("cuda:0")
        (path,) = m.predict_step([Prompt("a", "a cat")])
        out[where] = decode_mp4(path)
    assert (out["same"] == out["cuda:1"]).all()
