"""LumosNexusPipeline (nexus.pipelines): diffusers' call conventions over the UPFB sampler, the same videos as
tools/sample.py, folders that save and load, callbacks, Wan2.2's two experts, and bad arguments named."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ROOT  # noqa: F401  (sys.path for nexus)
from nexus.inference.module import BridgeModule, initial_noise, to_frames
from nexus.inference.prompts import Prompt
from nexus.pipelines import LumosNexusPipeline
from nexus.shapes import latent_shape
from nexus.upfb.sampler import BridgeConfig, Side, sample
from nexus.upfb.solver import ReferenceUniPC, make_scheduler
from test_sample import stage1_ckpt, stage1_export  # noqa: F401  (fixtures)

SHAPE = dict(num_frames=5, height=32, width=32)
STRATEGIES = ["upfb", "direct_add", "small_only", "large_only", "switch"]


@pytest.fixture(scope="module")
def pipe(tiny_models, stage1_export):
    return LumosNexusPipeline.from_sources(tiny_models["wan"], str(stage1_export), tiny_models["wan_large"],
                                           tiny_models["vlm"], torch_dtype=torch.float32)


@pytest.fixture(scope="module")
def a14b(tmp_path_factory, tiny_models):
    """A Wan2.2-A14B-style large folder: a second, different expert below boundary_ratio * 1000."""
    folder = tmp_path_factory.mktemp("a14b") / "a14b"
    shutil.copytree(tiny_models["wan_large"], folder)
    shutil.copytree(Path(tiny_models["wan"]) / "transformer", folder / "transformer_2")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline", "boundary_ratio": 0.875}))
    return folder


def latents_of(pipe, prompt="a red square", seed=0, **kw):
    kw = {**SHAPE, "num_inference_steps": 3, **kw}
    return pipe(prompt, generator=torch.Generator().manual_seed(seed), output_type="latent", **kw).frames


def knobs(strategy: str) -> dict:
    return {"strategy": strategy, **({"switch_step": 1} if strategy == "switch" else {})}


# ---- the same videos as tools/sample.py -----------------------------------------------------------------------
@pytest.mark.parametrize("scheduler", ["unipc", "unipc_reference", "euler"])
def test_the_lightning_module_and_the_pipeline_make_the_same_videos(tmp_path, tiny_models, stage1_export, pipe,
                                                                    scheduler, monkeypatch):
    """BridgeModule.predict_step (what tools/sample.py runs) for every strategy: its frames equal the pipeline's own
    output for the same noise, settings passed by diffusers' argument names (np output within one grey level: it
    rounds from [0, 1] rather than from [-1, 1])."""
    import nexus.inference.module as module
    written = {}
    monkeypatch.setattr(module, "write_mp4", lambda path, frames, fps, **kw: written.__setitem__(Path(path).stem,
                                                                                                 frames))
    pipe.scheduler = make_scheduler(scheduler, 5.0)
    for strategy in STRATEGIES:
        m = BridgeModule(tiny_models["wan"], tiny_models["wan_large"], str(tmp_path / strategy),
                         export=str(stage1_export), vlm_path=tiny_models["vlm"], num_steps=3, scheduler=scheduler,
                         dtype="fp32", bridge=knobs(strategy), guidance_small=4.0, guidance_large=6.0, seed=7,
                         progress=False, context_len=pipe.config.context_len, **SHAPE)     # the export's, as
        m.configure_model()                                                          # tools/sample.py checks
        m.predict_step([Prompt("p", "a red square")])
        noise = initial_noise(latent_shape(5, 32, 32), 7, "p", "per_prompt", torch.device("cpu"))
        call = dict(num_inference_steps=3, guidance_scale=6.0, guidance_scale_small=4.0, latents=noise, **SHAPE,
                    **knobs(strategy))
        z = pipe("a red square", output_type="latent", **call).frames
        assert (to_frames(pipe.decode_latents(z)[0]) == written["p"]).all(), strategy
        frames = pipe("a red square", output_type="np", **call).frames[0]
        assert frames.shape == (5, 32, 32, 3) and np.abs(frames * 255 - written["p"]).max() <= 1.0, strategy
    pipe.scheduler = make_scheduler("unipc", 5.0)


def test_output_type_latent_is_the_samplers_latents(pipe):
    """The pipeline's latents equal Algorithm 1 run by hand: the contexts from encode_prompt, the noise from the
    generator, nexus.upfb.sampler.sample."""
    got = latents_of(pipe, seed=3, guidance_scale=6.0, guidance_scale_small=4.0, gamma_w=0.5)
    cs, cs0, cl, cl0 = pipe.encode_prompt(["a red square"])
    noise = torch.randn(1, *latent_shape(5, 32, 32), generator=torch.Generator().manual_seed(3))
    want = sample(noise, make_scheduler("unipc", 5.0), 3, BridgeConfig(gamma_w=0.5),
                  Side(pipe.transformer_small, cs, cs0, 4.0), Side(pipe.transformer, cl, cl0, 6.0), progress=False)
    assert torch.equal(got, want)
    assert not torch.equal(got, latents_of(pipe, seed=3, guidance_scale=6.0, guidance_scale_small=4.0))


def test_every_placement_gives_the_same_latents(pipe):
    want = latents_of(pipe)
    for offload, encoders, small in (("none", "device", "same"), ("model", "device", "same"),
                                     ("model", "cpu", "same"), ("model", "device", "cpu")):
        pipe.enable_phase_offload("cpu", offload, encoders, small)
        try:
            assert torch.equal(latents_of(pipe), want), (offload, encoders, small)
        finally:
            pipe.placement = None


def test_the_phase_placement_moves_each_model_for_its_phase(pipe, monkeypatch):
    """offload=model: before each phase the models it runs come to the device and the others go to the CPU. The
    device here is the CPU too, so the moves are told apart by how they are asked for: to("cpu") sends a model away,
    to(<the device>) brings it."""
    moves, names = [], ("text_encoder", "vlm", "connector", "transformer_small", "transformer", "vae")
    for name in names:
        model = getattr(pipe, name)
        real = model.to

        def to(*args, _name=name, _real=real, **kwargs):
            moves.append((_name, "off" if args and isinstance(args[0], str) else "on"))
            return _real(*args, **kwargs)
        monkeypatch.setattr(model, "to", to)
    pipe.enable_phase_offload("cpu", "model")
    real_place = pipe.placement.place

    def place(p, phase):
        moves.append(("phase", phase))
        real_place(p, phase)
    pipe.placement.place = place
    try:
        latents_of(pipe)
        pipe.decode_latents(torch.zeros(1, *latent_shape(5, 32, 32)))
    finally:
        pipe.placement = None
    by_phase, phase = {}, None
    for name, what in moves:
        if name == "phase":
            phase = what
            by_phase[phase] = {"on": set(), "off": set()}
        else:
            by_phase[phase][what].add(name)
    assert list(by_phase) == ["encode", "sample", "decode"]
    assert by_phase["encode"] == {"on": {"text_encoder", "vlm", "connector"},
                                  "off": {"transformer_small", "transformer", "vae"}}
    assert by_phase["sample"] == {"on": {"transformer_small", "transformer"},
                                  "off": {"text_encoder", "vlm", "connector", "vae"}}
    assert by_phase["decode"] == {"on": {"vae"}, "off": set(names) - {"vae"}}


def test_a_seeded_generator_draws_the_reference_scripts_noise(pipe):
    """docs/released-model.md: one prompt with torch.Generator(device).manual_seed(42) gets the noise the reference
    scripts draw (sampling.noise=reference), here on the CPU."""
    ours = pipe.prepare_latents(1, 5, 32, 32, torch.Generator("cpu").manual_seed(42), device=torch.device("cpu"))
    reference = initial_noise(latent_shape(5, 32, 32), 42, "any id", "reference", torch.device("cpu"))
    assert torch.equal(ours, reference)


def test_outputs_by_type_and_return_dict(pipe):
    def kw():
        return dict(**SHAPE, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    np_video = pipe("a cat", **kw()).frames
    assert isinstance(np_video, np.ndarray) and np_video.shape == (1, 5, 32, 32, 3)
    assert 0 <= np_video.min() and np_video.max() <= 1 and np_video.std() > 0
    pt = pipe("a cat", output_type="pt", **kw()).frames
    assert pt.shape == (1, 5, 3, 32, 32) and torch.allclose(pt.permute(0, 1, 3, 4, 2), torch.from_numpy(np_video),
                                                            atol=1e-6)
    pil = pipe("a cat", output_type="pil", **kw()).frames
    assert len(pil) == 1 and len(pil[0]) == 5 and pil[0][0].size == (32, 32)
    (frames,) = pipe("a cat", return_dict=False, **kw())
    assert np.array_equal(frames, np_video)


def test_generators_negative_prompts_and_batches(pipe):
    a = latents_of(pipe, seed=1)
    assert torch.equal(a, latents_of(pipe, seed=1)) and not torch.equal(a, latents_of(pipe, seed=2))
    assert torch.equal(a, latents_of(pipe, seed=1, negative_prompt=""))      # the default null: the empty prompt
    assert not torch.equal(a, latents_of(pipe, seed=1, negative_prompt="blurry"))
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    both = pipe(["a red square", "a blue ball"], generator=gens, output_type="latent", num_inference_steps=3,
                **SHAPE).frames
    assert torch.allclose(both[0], a[0], atol=1e-5)
    assert torch.allclose(both[1], latents_of(pipe, "a blue ball", seed=2)[0], atol=1e-5)


# ---- callbacks, interrupt, attention kwargs, progress ----------------------------------------------------------
def test_callbacks_see_and_change_the_latents_at_each_step(pipe):
    seen = []

    def look(p, i, t, kwargs):
        assert p is pipe and set(kwargs) == {"latents", "velocity"}
        seen.append((i, float(t), kwargs["latents"].clone()))
        return {}
    got = latents_of(pipe, num_inference_steps=4, callback_on_step_end=look,
                     callback_on_step_end_tensor_inputs=["latents", "velocity"])
    s = make_scheduler("unipc", 5.0)
    s.set_timesteps(4)
    assert [i for i, _, _ in seen] == [0, 1, 2, 3] and [t for _, t, _ in seen] == s.timesteps.tolist()
    assert torch.equal(seen[-1][2], got)                       # the last callback saw the final latents

    def zero_last(p, i, t, kwargs):
        return {"latents": torch.zeros_like(kwargs["latents"])} if i == 3 else {}
    assert latents_of(pipe, num_inference_steps=4, callback_on_step_end=zero_last).abs().max() == 0

    def halve_first(p, i, t, kwargs):
        return {"latents": kwargs["latents"] * 0.5} if i == 0 else {}
    changed = latents_of(pipe, num_inference_steps=4, callback_on_step_end=halve_first)
    assert (changed - got).abs().max() > 1e-3

    steps = []

    def stop_after_two(p, i, t, kwargs):
        steps.append(i)
        p._interrupt = i == 1
        return {}
    latents_of(pipe, num_inference_steps=4, callback_on_step_end=stop_after_two)
    assert steps == [0, 1] and pipe.interrupt


def test_attention_kwargs_reach_every_forward(pipe):
    seen = []
    hooks = [m.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(kwargs.get("attention_kwargs")),
                                         with_kwargs=True) for m in (pipe.transformer, pipe.transformer_small)]
    try:
        latents_of(pipe, num_inference_steps=2, attention_kwargs={"scale": 1.0})
    finally:
        for h in hooks:
            h.remove()
    assert len(seen) == 4 and all(s == {"scale": 1.0} for s in seen)     # 2 generators x 2 steps, cond+null batched


def test_the_progress_bar_shows_unless_disabled(pipe, capsys):
    latents_of(pipe, num_inference_steps=2)
    assert "sampling (upfb)" in capsys.readouterr().err
    pipe.set_progress_bar_config(disable=True)
    try:
        latents_of(pipe, num_inference_steps=2)
        assert "sampling" not in capsys.readouterr().err
    finally:
        pipe.set_progress_bar_config(disable=False)


# ---- Wan2.2-A14B ------------------------------------------------------------------------------------------------
def test_two_expert_folders_hand_over_at_the_boundary(tiny_models, a14b):
    pipe = LumosNexusPipeline.from_sources(tiny_models["wan"], None, str(a14b), torch_dtype=torch.float32,
                                           strategy="large_only")
    assert pipe.transformer_2 is not None and pipe.config.boundary_ratio == 0.875 and pipe.transformer_small is None
    calls = []
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: calls.append((name, float(args[1][0]))))
             for name, m in (("high", pipe.transformer), ("low", pipe.transformer_2))]
    try:
        latents_of(pipe, num_inference_steps=6, strategy="large_only")
    finally:
        for h in hooks:
            h.remove()
    assert {n for n, _ in calls} == {"high", "low"}
    assert all((t >= 875) == (n == "high") for n, t in calls), calls
    with pytest.raises(ValueError, match="strategy='upfb' runs transformer_small, .* without strategy='large_only'"):
        latents_of(pipe)


# ---- folders ----------------------------------------------------------------------------------------------------
def test_save_and_load_round_trip_without_copying_the_frozen_parts(tmp_path, pipe, tiny_models, stage1_export):
    pipe.scheduler = ReferenceUniPC.from_config(make_scheduler("unipc_reference", 3.0).config)
    try:
        want = latents_of(pipe)
        pipe.save_pretrained(tmp_path / "pipe")
    finally:
        pipe.scheduler = make_scheduler("unipc", 5.0)
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["_class_name"] == "LumosNexusPipeline" and index["connector"] == ["nexus.models.connector",
                                                                                   "OmniConnector"]
    assert index["_nexus_sources"] == {"wan": str(Path(tiny_models["wan"]).resolve()),
                                       "small": str(Path(stage1_export).resolve()),
                                       "large": str(Path(tiny_models["wan_large"]).resolve()),
                                       "vlm": str(Path(tiny_models["vlm"]).resolve())}
    assert not list((tmp_path / "pipe").glob("**/*.safetensors"))            # nothing copied
    assert json.loads((tmp_path / "pipe" / "nexus.json").read_text())["pipeline"]["sources"] == index["_nexus_sources"]
    loaded = LumosNexusPipeline.from_pretrained(tmp_path / "pipe", torch_dtype=torch.float32)
    assert type(loaded.scheduler) is ReferenceUniPC and loaded.scheduler.config.flow_shift == 3.0
    assert torch.equal(latents_of(loaded), want)


def test_a_connector_made_in_memory_is_saved_in_the_folder(tmp_path, pipe, tiny_models):
    import copy
    mine = LumosNexusPipeline(**{**pipe.components, "connector": copy.deepcopy(pipe.connector)},
                              **{k: pipe.config[k] for k in ("text_len", "context_len")})
    mine.sources = {"wan": tiny_models["wan"], "large": tiny_models["wan_large"], "vlm": tiny_models["vlm"]}
    with torch.no_grad():
        mine.connector.markers.add_(1.0)          # a connector no folder holds
    want = latents_of(mine)
    mine.save_pretrained(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "connector" / "model.safetensors").is_file()
    assert (tmp_path / "pipe" / "transformer" / "config.json").is_file()
    assert json.loads((tmp_path / "pipe" / "model_index.json").read_text())["_nexus_sources"]["small"] == "."
    assert torch.equal(latents_of(LumosNexusPipeline.from_pretrained(tmp_path / "pipe", torch_dtype=torch.float32)),
                       want)
    assert not torch.equal(latents_of(pipe), want)
    bare = LumosNexusPipeline(**pipe.components)
    with pytest.raises(ValueError, match="pipe.vae came from no folder"):
        bare.save_pretrained(tmp_path / "bare")


def test_tools_export_writes_a_pipeline_folder(tmp_path, tiny_models, stage1_ckpt, pipe):
    import subprocess
    import sys
    out = tmp_path / "export"
    r = subprocess.run([sys.executable, "tools/export.py", str(stage1_ckpt), str(out), "--dtype", "fp32", "--large",
                        tiny_models["wan_large"]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    index = json.loads((out / "model_index.json").read_text())
    assert index["_nexus_sources"]["small"] == "." and index["_nexus_sources"]["vlm"].endswith("vlm")
    loaded = LumosNexusPipeline.from_pretrained(out, torch_dtype=torch.float32)
    assert torch.equal(latents_of(loaded), latents_of(pipe))     # the export the module fixture was built from
    from nexus.export import export_checkpoint
    no_large = export_checkpoint(stage1_ckpt, tmp_path / "no_large", dtype="fp32")      # no --large
    small_only = LumosNexusPipeline.from_pretrained(no_large, torch_dtype=torch.float32)
    assert small_only.transformer is None
    assert torch.equal(latents_of(small_only, strategy="small_only"), latents_of(pipe, strategy="small_only"))
    with pytest.raises(ValueError, match="strategy='upfb' runs transformer, which this pipeline was loaded without: "
                                         "pass large=<Wan2.1-T2V-14B"):
        latents_of(small_only)
    with_large = LumosNexusPipeline.from_pretrained(no_large, large=tiny_models["wan_large"],
                                                    torch_dtype=torch.float32)
    assert torch.equal(latents_of(with_large), latents_of(pipe))


# ---- bad arguments ----------------------------------------------------------------------------------------------
BAD_CALLS = [
    (dict(prompt=None), ValueError, "prompt=None"),
    (dict(prompt=[]), ValueError, "prompt=\\[\\]"),
    (dict(num_frames=6), ValueError, "num_frames=6 is not 4k\\+1"),
    (dict(height=30), ValueError, "height=30 is not a multiple of 16"),
    (dict(num_inference_steps=0), ValueError, "num_inference_steps=0"),
    (dict(guidance_scale=float("inf")), ValueError, "guidance_scale=inf"),
    (dict(guidance_scale_small=float("nan")), ValueError, "guidance_scale_small=nan"),
    (dict(output_type="gif"), ValueError, "output_type='gif'"),
    (dict(callback_on_step_end_tensor_inputs=["noise"]), ValueError, "callback_on_step_end_tensor_inputs"),
    (dict(latents=torch.zeros(1, 16, 3, 4, 4)), ValueError, "latents has shape"),
    (dict(negative_prompt=["a", "b"]), ValueError, "negative_prompt"),
    (dict(generator=[torch.Generator(), torch.Generator()]), ValueError, "generator: 2 generators for 1"),
    (dict(strategy="fancy"), ValueError, "strategy='fancy'"),
    (dict(gamma_hf=2.0), ValueError, "gamma_hf=2.0"),
    (dict(strategy="switch"), ValueError, "switch_step"),
    (dict(gamma=0.3), TypeError, "unexpected argument.*'gamma'"),
]


@pytest.mark.parametrize("bad,error,match", BAD_CALLS, ids=[next(iter(b)) + str(i) for i, (b, _, _) in
                                                           enumerate(BAD_CALLS)])
def test_a_bad_argument_is_named(pipe, bad, error, match):
    kw = {"prompt": "a cat", **SHAPE, "num_inference_steps": 2, **bad}
    with pytest.raises(error, match=match):
        pipe(**kw)


def test_bad_folders_are_named(tmp_path, tiny_models, a14b):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        LumosNexusPipeline.from_pretrained(tmp_path / "missing")
    with pytest.raises(ValueError, match="is a WanPipeline folder, not a LumosNexusPipeline one: pass it as large="):
        LumosNexusPipeline.from_pretrained(a14b)
    with pytest.raises(FileNotFoundError, match="neither a model_index.json of a LumosNexusPipeline nor"):
        LumosNexusPipeline.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="unexpected argument.*'larg'"):
        LumosNexusPipeline.from_sources(tiny_models["wan"], larg=tiny_models["wan_large"])


# ---- GPU: diffusers' offload hooks ------------------------------------------------------------------------------
@pytest.mark.gpu
def test_cuda_offload_hooks_give_the_latents_of_the_plain_placement(tiny_models, stage1_export):
    def fresh():
        return LumosNexusPipeline.from_sources(tiny_models["wan"], str(stage1_export), tiny_models["wan_large"],
                                               tiny_models["vlm"], torch_dtype=torch.float32)

    def run(p):
        return p("a red square", **SHAPE, num_inference_steps=3, output_type="latent",
                 generator=torch.Generator("cuda").manual_seed(0)).frames.cpu()
    want = run(fresh().to("cuda"))
    for enable in ("enable_model_cpu_offload", "enable_sequential_cpu_offload"):
        p = fresh()
        getattr(p, enable)()
        assert torch.allclose(run(p), want, atol=1e-4), enable
    p = fresh()
    p.enable_phase_offload("cuda", "model")
    assert torch.allclose(run(p), want, atol=1e-4)
