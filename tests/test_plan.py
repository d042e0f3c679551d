"""The memory plan (nexus.plan, tools/plan.py): its tracer against real tensors and torch's own MemTracker, its
depth extrapolation and split connector/generator trace against direct traces, the table's arithmetic, the model
states against DeepSpeed's own estimator, the sampler's placement, and the tools that refuse what does not fit."""
import json
import os
import runpy
import subprocess
import sys

import pytest
import torch

from helpers import ROOT

GIB = 1024 ** 3
# a tiny Wan2.1 transformer (the real architecture, small widths)
TINY_WAN = dict(patch_size=[1, 2, 2], num_attention_heads=2, attention_head_dim=16, in_channels=16, out_channels=16,
                text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=64)
TINY_CONNECTOR = dict(vlm_dim=64, vision_dim=32, vision_layers=1, vision_heads=2, vision_ffn=64, vision_queries=4,
                      out_dim=32, adapter_layers=1, adapter_heads=2, adapter_ffn=64, adapter_queries=8)
A14B_SMALL = ("sampling.num_frames=5", "sampling.height=64", "sampling.width=64")


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, WANDB_MODE="offline"))


def tool(monkeypatch, capsys, script: str, *args: str) -> tuple[int, str, str]:
    """`python tools/<script> <args>` run in this process: the script's __main__ block (hydra_tool: argument
    handling, config checks, one-line errors, exit status) as a user runs it, sharing this process's imports and
    trace caches (a fresh interpreter costs seconds each). The tool's console log tee is left out.
    -> (exit status, stdout, stderr)."""
    import nexus.console
    monkeypatch.setattr(nexus.console, "capture", lambda: None)
    monkeypatch.setattr(sys, "argv", [str(ROOT / "tools" / script), *args])
    capsys.readouterr()
    try:
        runpy.run_path(str(ROOT / "tools" / script), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def _wan(cfg: dict, layers: int | None = None):
    from diffusers import WanTransformer3DModel
    return WanTransformer3DModel.from_config({**cfg, **({"num_layers": layers} if layers else {})})


def _tool_config(which: str, *overrides: str):
    """A tool's config composed and checked as tools/plan.py does (its own Tool, with its defaults)."""
    from nexus.cli import load_config
    tools = runpy.run_path(str(ROOT / "tools" / "plan.py"), run_name="plan_for_tests")["TOOLS"]
    return load_config(tools[which], list(overrides))


# ---- 1. the tracer -----------------------------------------------------------------------------------------------
def _wan_step(model, batch: int = 1):
    """A forward + backward of a tiny Wan on a (batch, 16, 3, 8, 8) latent and a 12-token context."""
    x = torch.randn(batch, 16, 3, 8, 8)
    context = torch.randn(batch, 12, 32)
    t = torch.full((batch,), 500.0)

    def step():
        out = model(x, t, context, return_dict=False)[0]
        out.float().square().mean().backward()
    return step


def test_peak_on_fake_tensors_equals_peak_on_real_tensors():
    from nexus.plan.trace import fake_tensors, peak_bytes
    torch.manual_seed(0)
    real = peak_bytes(_wan_step(_wan(TINY_WAN)))
    with fake_tensors():
        fake = peak_bytes(_wan_step(_wan(TINY_WAN)))
    # a forward + backward holds at least the latent-sized output and more than one block's activations
    assert real > 16 * 3 * 8 * 8 * 4
    assert fake == real


def test_peak_memory_counts_allocations_not_views_by_hand():
    from nexus.plan.trace import PeakMemory, peak_bytes
    x, w = torch.randn(4, 8), torch.randn(8, 16)        # exist before the trace: not counted
    with PeakMemory() as mode:
        views = [x.t(), x.view(32), x.reshape(2, 16), x[1:3], x.unsqueeze(0), w.T]
        x.mul_(1.0)                                      # in place: no new storage
        assert mode.now == 0 and mode.peak == 0
        y = x @ w                                        # (4, 16) float32
        assert mode.now == mode.peak == 4 * 16 * 4
        z = y + 1                                        # a second (4, 16)
        assert mode.now == mode.peak == 2 * 4 * 16 * 4
        del y
        assert mode.now == 4 * 16 * 4                    # freed when the last reference goes
        c = x.t().contiguous()                           # a copy of a view is an allocation: 32 floats
        assert mode.now == 4 * 16 * 4 + 32 * 4 and mode.peak == 2 * 4 * 16 * 4
        del z, c, views
        assert mode.now == 0
    assert peak_bytes(lambda: x @ w) == 4 * 16 * 4
    assert peak_bytes(lambda: (x.t(), x.view(2, 16))) == 0
    assert peak_bytes(lambda: torch.empty(10, dtype=torch.bfloat16)) == 20


def test_peak_agrees_with_torch_mem_tracker():
    """torch's MemTracker (its peak snapshot less parameters and buffers, which our trace does not count) on the
    same forward + backward of a model whose parameters take gradients."""
    from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType
    from nexus.plan.trace import peak_bytes
    torch.manual_seed(0)
    model = _wan(TINY_WAN)
    assert all(p.requires_grad for p in model.parameters())
    step = _wan_step(model)
    tracker = MemTracker()
    tracker.track_external(model)
    with tracker:
        step()
    (snap,) = tracker.get_tracker_snapshot("peak").values()
    theirs = snap["Total"] - snap[_MemRefType.PARAM] - snap[_MemRefType.BUFFER]
    model.zero_grad(set_to_none=True)
    ours = peak_bytes(step)
    assert theirs > 0
    assert ours == pytest.approx(theirs, rel=0.02), (ours, theirs)      # 0.36% here


# ---- 2. activations ---------------------------------------------------------------------------------------------
DEPTH_SHAPE = dict(batch=1, frames=9, height=64, width=64, context_len=16)      # latent (3, 8, 8): 48 tokens


def _direct_generator_step(cfg: dict, generator_train: str, checkpointing: bool) -> int:
    """generator_step's computation written out at the config's full depth: bf16 weights, the trainable ones
    releasing their gradient as it accumulates, a context that takes a gradient, the flow loss, backward."""
    from nexus.plan.trace import default_dtype, fake_tensors, peak_bytes
    s = DEPTH_SHAPE
    with fake_tensors(), default_dtype(torch.bfloat16):
        gen = _wan(cfg).train(generator_train != "frozen")
        for p in gen.parameters():
            p.requires_grad_(generator_train == "full")
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(lambda q: setattr(q, "grad", None))
        if checkpointing:
            gen.enable_gradient_checkpointing()
        x0 = torch.randn(s["batch"], 16, (s["frames"] - 1) // 4 + 1, s["height"] // 8, s["width"] // 8)
        context = torch.randn(s["batch"], s["context_len"], cfg["text_dim"], requires_grad=True)
        t = torch.full((s["batch"],), 500.0)

        def step():
            pred = gen(x0, t, context, return_dict=False)[0]
            (pred.float() - x0.float()).square().mean().backward()
        return peak_bytes(step)


@pytest.mark.parametrize("generator_train", ["full", "frozen"])
def test_depth_extrapolation_matches_a_full_depth_trace(generator_train):
    from nexus.plan import activations as act
    cfg6 = dict(TINY_WAN, num_layers=6)        # > 3 blocks: generator_step traces 2 and 3 and extrapolates
    planned = act.generator_step(act.freeze(cfg6), act.StepShape(**DEPTH_SHAPE), generator_train, None, True)
    direct = _direct_generator_step(cfg6, generator_train, checkpointing=True)
    assert planned == pytest.approx(direct, rel=0.02)


def _joint_shape():
    from nexus.plan.activations import StepShape
    # 4 x 8 connector tokens + 16 UMT5 tokens + 4 markers fit a 64-token context
    return StepShape(batch=2, frames=9, height=64, width=64, context_len=64, text_len=16, vlm_tokens=128)


JOINT_SHAPE = _joint_shape()


def test_split_connector_trace_matches_one_joint_trace():
    """train_step traces the connector and the generator apart; one joint trace runs connector -> context ->
    generator -> flow loss -> backward. 128 VLM tokens make the connector's share large enough that leaving it
    out would miss by more than the tolerance (checked)."""
    from nexus.models.conditioning import small_context
    from nexus.models.connector import ConnectorConfig, OmniConnector
    from nexus.plan import activations as act
    from nexus.plan.trace import default_dtype, fake_tensors, peak_bytes
    shape, checkpointing = JOINT_SHAPE, True
    b, vlm_tokens, text_len, context_len = shape.batch, shape.vlm_tokens, shape.text_len, shape.context_len
    planned = act.train_step(act.freeze(TINY_WAN), shape, act.freeze(TINY_CONNECTOR), "full", None, checkpointing)
    generator_alone = act.generator_step(act.freeze(TINY_WAN), shape, "full", None, checkpointing)
    with fake_tensors(), default_dtype(torch.bfloat16):
        conn = OmniConnector(ConnectorConfig(**TINY_CONNECTOR)).train()
        conn.gradient_checkpointing = checkpointing
        gen = _wan(TINY_WAN).train()
        if checkpointing:
            gen.enable_gradient_checkpointing()
        for p in [*conn.parameters(), *gen.parameters()]:
            p.register_post_accumulate_grad_hook(lambda q: setattr(q, "grad", None))
        hidden = torch.randn(b, vlm_tokens, TINY_CONNECTOR["vlm_dim"])
        umt5 = [torch.randn(text_len, TINY_WAN["text_dim"]) for _ in range(b)]
        x0, t = torch.randn(b, 16, 3, 8, 8), torch.full((b,), 500.0)

        def step():
            tokens = conn(hidden, None, video=True)
            context = small_context(tokens, umt5, conn.markers, context_len)
            pred = gen(x0, t, context, return_dict=False)[0]
            (pred.float() - x0.float()).square().mean().backward()
        joint = peak_bytes(step)
    assert planned == pytest.approx(joint, rel=0.10)
    assert generator_alone != pytest.approx(joint, rel=0.10)        # the connector's part is what is checked


def test_gradient_checkpointing_lowers_the_step_peak():
    """The two-block generator of the test above (its checkpointed trace cached)."""
    from nexus.plan import activations as act
    on, off = (act.generator_step(act.freeze(TINY_WAN), JOINT_SHAPE, "full", None, c) for c in (True, False))
    assert 0 < on < off


# ---- 3. the table -----------------------------------------------------------------------------------------------
def _plan(capacity=None):
    from nexus.plan.table import Plan
    plan = Plan("test", ("encode", "step"), gpu="test-gpu" if capacity else None, capacity=capacity)
    plan.add("weights", 10 * GIB)                           # every phase
    plan.add("encoder", 3 * GIB, "encode")
    plan.add("activations", 5 * GIB, ("step",))
    plan.add("nothing", 0, "step")                          # a zero row is not a row
    return plan


def test_plan_totals_peak_and_fits():
    from nexus.plan.table import FRAGMENTATION, RESERVE
    plan = _plan()
    assert [r.what for r in plan.rows] == ["weights", "encoder", "activations"]
    assert plan.rows[0].phases == ("encode", "step")
    assert plan.total("encode") == int(13 * GIB * (1 + FRAGMENTATION) + RESERVE)
    assert plan.total("step") == int(15 * GIB * (1 + FRAGMENTATION) + RESERVE)
    assert plan.peak == ("step", plan.total("step"))
    assert plan.fits is None and "no GPU to check against" in plan.table()
    need = 15 * GIB * (1 + FRAGMENTATION) + RESERVE
    assert _plan(capacity=need + 1).fits is True and "fits" in _plan(capacity=need + 1).table()
    assert _plan(capacity=need - GIB).fits is False and "DOES NOT FIT" in _plan(capacity=need - GIB).table()
    d = _plan(capacity=need + 1).to_dict()
    assert d["peak_phase"] == "step" and d["fits"] is True and len(d["rows"]) == 3
    assert d["phases"]["encode"] == pytest.approx(plan.total("encode") / GIB)


def test_gpu_memory_names():
    from nexus.plan.table import gpu_memory
    assert gpu_memory("h100-80gb") == ("h100-80gb", pytest.approx(79.2 * GIB))
    assert gpu_memory("h200-141gb")[1] == pytest.approx(139.8 * GIB)
    assert gpu_memory("80gib") == ("80gib", 80 * GIB)
    assert gpu_memory("0.5GiB")[1] == GIB / 2
    assert gpu_memory("off") == (None, None) and gpu_memory(None) == (None, None)
    if not torch.cuda.is_available():
        assert gpu_memory("auto") == (None, None)
    for bad in ("h100", "80gb", "lots"):
        with pytest.raises(ValueError, match=r"plan\.gpu=.*h100-80gb.*gib"):
            gpu_memory(bad)


def test_refuse_names_the_table_the_fixes_and_the_way_out():
    from nexus.plan.table import MemoryPlanError, refuse
    small = _plan(capacity=8 * GIB)
    fixes = ["sampling.offload=model: peak 5.0 GiB", "sampling.encoders=cpu: peak 6.0 GiB"]
    with pytest.raises(MemoryPlanError) as e:
        refuse(small, fixes, "this run")
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert small.table() in msg and all(f in msg for f in fixes) and "plan.gpu=off" in msg
    assert f"{small.total('step') / GIB:.1f} GiB" in msg and "test-gpu" in msg
    with pytest.raises(MemoryPlanError, match="no single change"):
        refuse(small, [], "this run")
    assert refuse(_plan(capacity=100 * GIB), fixes, "this run") is None      # fits: nothing raised
    assert refuse(_plan(), fixes, "this run") is None                        # no GPU: nothing checked


# ---- 4. fit: model states against DeepSpeed's estimator ---------------------------------------------------------
def _trainable_params_omni_wan13b() -> tuple[int, int]:
    """(Wan2.1-1.3B + the full-size connector, DeepSpeed's largest layer of the two), counted on the meta device
    here; the largest layer by DeepSpeed's own rule (stage3.model_to_params: the most parameters one module holds
    itself)."""
    from deepspeed.runtime.zero.stage3 import model_to_params
    from diffusers import WanTransformer3DModel
    from nexus.models.connector import PRESETS as CONNECTORS
    from nexus.models.connector import ConnectorConfig, OmniConnector
    from nexus.models.presets import PRESETS
    with torch.device("meta"):       # omni_wan13b: the released architecture (4 markers) on Qwen2.5-VL-7B's 3584
        wan = WanTransformer3DModel.from_config(PRESETS["wan2.1-t2v-1.3b"])
        conn = OmniConnector(ConnectorConfig(**{**CONNECTORS["omnivideo_v1"], "vlm_dim": 3584}))
    total = sum(p.numel() for p in wan.parameters()) + sum(p.numel() for p in conn.parameters())
    return total, max(model_to_params(wan)[1], model_to_params(conn)[1])


def _rows(plan, *prefixes: str) -> int:
    found = [r for r in plan.rows if r.what.startswith(prefixes)]
    assert {p for p in prefixes if any(r.what.startswith(p) for r in found)} == set(prefixes), plan.table()
    return sum(r.bytes for r in found)


def test_fit_model_states_match_deepspeed_estimator():
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
    from nexus.plan.fit import fit_plan
    params, largest_block = _trainable_params_omni_wan13b()
    # small clips: the activation trace (not in these rows) stays quick
    common = ["recipe=omni_wan13b", "trainer.devices=8", "data.kind=features", "paths.wan=null", "paths.vlm=null",
              "plan.gpu=off", "data.num_frames=5", "data.height=64", "data.width=64"]
    zero2 = fit_plan(_tool_config("fit", *common))
    assert "ZeRO-2" in zero2.title
    assert _rows(zero2, "trainable weights (bf16)", "grads + fp32 master + Adam") == \
        estimate_zero2_model_states_mem_needs(params, num_gpus_per_node=8, num_nodes=1, cpu_offload=False)[1]
    assert not any("frozen" in r.what for r in zero2.rows)          # everything trains
    zero3 = fit_plan(_tool_config("fit", *common, "strategy=deepspeed_zero3"))
    assert "ZeRO-3" in zero3.title
    assert _rows(zero3, "largest layer gathered", "ZeRO-3 partitions") == \
        estimate_zero3_model_states_mem_needs(params, largest_block, 8, 1, cpu_offload=False,
                                              cpu_offload_params=False, zero_init=True)[1]


def test_preset_parameter_counts():
    """Wan2.1-T2V-1.3B and -14B as published: 1.419 B and 14.29 B parameters."""
    from nexus.models.presets import PRESETS
    from nexus.plan.sizes import wan_params
    small, small_block = wan_params(PRESETS["wan2.1-t2v-1.3b"])
    large, large_block = wan_params(PRESETS["wan2.1-t2v-14b"])
    assert float(f"{small:.4g}") == 1.419e9
    assert float(f"{large:.4g}") == 14.29e9
    assert small_block * 30 < small and large_block * 40 < large


# ---- 5. sample: the placement --------------------------------------------------------------------------------------
def _sample_plan(*overrides: str):
    from nexus.plan.sample import sample_plan
    return sample_plan(_tool_config("sample", "recipe=nexus_wan22_a14b", "plan.connector=true", "plan.gpu=off",
                                    "paths.small=null", "paths.large=null", "paths.vlm=null", *A14B_SMALL,
                                    *overrides))


def _wan14b_params() -> int:
    from nexus.models.presets import PRESETS
    with torch.device("meta"):
        return sum(p.numel() for p in _wan(PRESETS["wan2.1-t2v-14b"]).parameters())


def test_sample_plan_places_the_a14b_experts():
    expert = _wan14b_params()
    phases = ("encode", "sample", "decode")

    none = _sample_plan("sampling.offload=none")
    large = [r for r in none.rows if r.what.startswith("large generator weights")]
    assert sum(r.bytes for r in large) == 2 * 2 * expert            # bf16, both experts resident
    assert large and all(r.phases == phases for r in large)

    model = _sample_plan("sampling.offload=model")
    (one,) = [r for r in model.rows if r.what.startswith("large generator weights")]
    assert one.bytes == 2 * expert and one.phases == ("sample",)   # only the active expert, only while sampling
    assert not [r for r in model.rows if "generator" in r.what and "weights" in r.what and "encode" in r.phases]
    assert model.total("encode") < none.total("encode")

    cpu = _sample_plan("sampling.offload=model", "sampling.encoders=cpu")
    assert [r.what for r in model.rows if r.what.startswith(("UMT5", "VLM"))]
    assert not [r.what for r in cpu.rows if "UMT5" in r.what or "VLM" in r.what]
    assert cpu.total("encode") < model.total("encode")


# ---- 6, 7. the tools as a user runs them -------------------------------------------------------------------------
A14B_NONE = ("sample", "recipe=nexus_wan22_a14b", "plan.connector=true", "sampling.offload=none", "paths.small=null",
             "paths.large=null", "paths.vlm=null", *A14B_SMALL)


def test_plan_tool_refuses_a14b_on_h100_and_names_fixes(monkeypatch, capsys):
    """At 5x64x64 the activations are small, yet both experts, the small generator and the encoders resident
    (offload=none) need over 80 GB."""
    code, out, err = tool(monkeypatch, capsys, "plan.py", *A14B_NONE, "plan.gpu=h100-80gb")
    assert code == 1, out[-2000:] + err[-2000:]
    assert "DOES NOT FIT" in out and "h100-80gb" in out
    fixes = out.split("these changes fit, by the same plan:")[1]
    assert "sampling.offload=model" in fixes


def test_plan_tool_fits_a14b_on_h200_and_writes_json(monkeypatch, capsys, tmp_path):
    from nexus.plan.table import GPUS
    code, out, err = tool(monkeypatch, capsys, "plan.py", *A14B_NONE, "plan.gpu=h200-141gb",
                          f"plan.json={tmp_path}/p.json")
    assert code == 0, out[-2000:] + err[-2000:]
    assert "fits" in out and "DOES NOT FIT" not in out
    d = json.loads((tmp_path / "p.json").read_text())
    assert d["fits"] is True and d["gpu"] == "h200-141gb"
    assert d["peak_gib"] == max(d["phases"].values()) and d["peak_gib"] * GIB <= GPUS["h200-141gb"]
    assert {"what", "gib", "phases"} <= set(d["rows"][0])
    assert d["peak_gib"] * GIB > GPUS["h100-80gb"]          # the plan the h100 test refuses


def test_plan_tool_usage_errors(monkeypatch, capsys):
    r = run("tools/plan.py")
    assert r.returncode == 2 and "fit | sample" in r.stderr
    code, out, err = tool(monkeypatch, capsys, "plan.py", "sample", "recipe=nexus_wan22_a14b", "plan.gpu=h100")
    assert code == 2, err[-2000:]
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "plan.gpu='h100'" in line and "h100-80gb" in line and "Traceback" not in err


def _tiny_paths(tiny_models, *keys) -> list[str]:
    return [f"paths.{k}={tiny_models[v]}" for k, v in keys] + ["paths.tiny_models=null"]


def _refused(code: int, out: str) -> None:
    assert code != 0, out[-3000:]
    assert "memory plan" in out and "DOES NOT FIT" in out and "plan.gpu=off" in out, out[-3000:]


def test_fit_tool_refuses_before_training(monkeypatch, capsys, tmp_path, tiny_models):
    code, out, err = tool(monkeypatch, capsys, "fit.py", "recipe=tiny", "plan.gpu=0.01gib", f"run.root={tmp_path}",
                          "logger=none", "trainer.max_steps=1",
                          *_tiny_paths(tiny_models, ("wan", "wan"), ("vlm", "vlm")))
    _refused(code, out + err)
    # refused before the run directory is touched (nexus.training.launch), so nothing to resume or clean up
    assert not list(tmp_path.rglob("*.ckpt")) and not (tmp_path / "tiny").exists()


def test_sample_tool_refuses_before_sampling(monkeypatch, capsys, tmp_path, tiny_models):
    code, out, err = tool(monkeypatch, capsys, "sample.py", "recipe=tiny", "plan.gpu=0.01gib", f"run.root={tmp_path}",
                          "prompt=a red ball", "sampling.progress=false",
                          *_tiny_paths(tiny_models, ("small", "wan"), ("large", "wan_large"), ("vlm", "vlm")))
    _refused(code, out + err)
    assert not list(tmp_path.rglob("*.mp4")) and not list(tmp_path.rglob("samples.json"))


# ---- on a GPU: the traces against CUDA's own peak -----------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("train", [False, True])
def test_traced_activations_match_the_cuda_peak(train):
    """The fake-tensor trace (CPU kernels) against torch.cuda.max_memory_allocated above the weights, for a guided
    forward and a checkpointed training step of a 4-block Wan at a real head size (attention kernels differ: 25%)."""
    from diffusers import WanTransformer3DModel
    from nexus.plan import activations as act
    cfg = dict(TINY_WAN, num_attention_heads=4, attention_head_dim=128, ffn_dim=1024, text_dim=512, num_layers=4)
    shape = act.StepShape(1, 9, 128, 128, 64, text_len=64)
    dev = torch.device("cuda")
    model = WanTransformer3DModel.from_config(cfg).to(dev, torch.bfloat16)
    z = torch.randn(1 if train else 2, 16, *shape.latent, device=dev, dtype=torch.bfloat16)
    c = torch.randn(z.shape[0], 64, 512, device=dev, dtype=torch.bfloat16, requires_grad=train)
    t = torch.full((z.shape[0],), 500.0, device=dev)
    if train:
        model.enable_gradient_checkpointing()
        model.train().requires_grad_(False)
        planned = act.generator_step(act.freeze(cfg), shape, "frozen")
    else:
        planned = act.generator_forward(act.freeze(cfg), shape)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.set_grad_enabled(train):
        out = model(z, t, c, return_dict=False)[0]
        if train:
            out.float().square().mean().backward()
    peak = torch.cuda.max_memory_allocated() - base
    assert 0.75 * planned <= peak <= 1.25 * planned, (peak, planned)
