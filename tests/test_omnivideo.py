"""The released model (OmniVideo11B + Wan2.1-T2V-14B): a tiny bundle laid out like the release converts strictly,
its connector computes what the reference's composition computes, the round trip to the release layout is exact,
and it samples and trains through the tools."""
import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from helpers import ROOT
from nexus.convert.omnivideo import (FILES, BundleError, _connector_to_release, check_bundle, convert_bundle,
                                     read_pickle)
from nexus.convert.omnivideo_write import write_bundle
from nexus.convert.tiny_bundle import tiny_connector_config, write_tiny_bundle
from nexus.models.conditioning import small_context
from nexus.models.connector import PRESETS, ConnectorConfig, OmniConnector


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_tiny_bundle(tmp_path_factory.mktemp("release") / "OmniVideo11B")["bundle"]


@pytest.fixture(scope="module")
def export(bundle, tmp_path_factory):
    return convert_bundle(bundle, tmp_path_factory.mktemp("exports") / "lumos-nexus", progress=False)


def copy_bundle(bundle, tmp_path):
    """A copy of the bundle to break (the 14B and the LLM linked, not copied)."""
    out = tmp_path / "broken"
    shutil.copytree(bundle, out, ignore=shutil.ignore_patterns("Wan2.1-T2V-14B", "ar_model"))
    (out / "ar_model").mkdir()
    (out / "ar_model" / "checkpoint").symlink_to(f"{bundle}/ar_model/checkpoint")
    return out


# ---- the connector against the reference's composition ------------------------------------------------------------
def reference_connector(config: ConnectorConfig, state: dict):
    """VisionHead and DM_Adapter as the reference composes them, from torch.nn parts (nn.Transformer with its
    default 8 heads and ReLU, pre-norm, exact-GELU MLPs), loaded with the release-layout weights."""
    vh, ad = _connector_to_release(state)

    def block(d_in, d, ffn):
        m = nn.Module()
        m.fc = nn.Sequential(nn.Linear(d_in, d), nn.GELU(), nn.Linear(d, d))
        m.tf = nn.Transformer(d_model=d, num_encoder_layers=4, num_decoder_layers=4, dim_feedforward=ffn, dropout=0.0,
                              batch_first=True, norm_first=True)
        return m
    head, adapter = block(config.vlm_dim, config.vision_dim, config.vision_ffn), \
        block(config.vision_dim, config.out_dim, config.adapter_ffn)
    head.fc.load_state_dict({k[3:]: v for k, v in vh.items() if k.startswith("fc.")})
    head.tf.load_state_dict({k[len("visionHeadAdapter."):]: v for k, v in vh.items() if k.startswith("visionHead")})
    adapter.fc.load_state_dict({k[3:]: v for k, v in ad.items() if k.startswith("fc.")})
    adapter.tf.load_state_dict({k[len("adapter."):]: v for k, v in ad.items() if k.startswith("adapter.")})

    def run(hidden):            # one prompt: (1, L, d_vlm) -> (1, 4 x 256, D), video_model.py's order
        x = head.fc(hidden)
        v = head.tf(x, tgt=vh["decoder_query"].repeat(x.shape[0], 1, 1))                 # (1, 4, d)
        y = adapter.fc(v.reshape(-1, 1, v.shape[-1]))                                       # (4, 1, D)
        a = adapter.tf(y, tgt=ad["decoder_query"].repeat(y.shape[0], 1, 1))                # (4, Q, D)
        return a.reshape(1, -1, a.shape[-1])
    return run


def test_release_connector_computes_the_reference_composition():
    torch.manual_seed(0)
    config = tiny_connector_config(vlm_dim=24, out_dim=32)
    model = OmniConnector(config).eval()
    state = model.state_dict()
    ref = reference_connector(config, state)
    h = torch.randn(2, 7, 24)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    with torch.no_grad():
        ours = model(h, mask)
        for i, n in enumerate((7, 5)):
            assert torch.allclose(ours[i:i + 1], ref(h[i:i + 1, :n]), atol=1e-5), i
        # the same weights in nexus's first architecture compute something else (16 heads / tanh-GELU / GELU FFN)
        legacy = OmniConnector(ConnectorConfig(**{**config.to_dict(), "vision_heads": 2, "adapter_heads": 2,
                                                  "mlp_activation": "gelu_tanh", "ffn_activation": "gelu",
                                                  "markers": "shared"})).eval()
        legacy.load_state_dict({k: v for k, v in state.items() if k != "markers"}, strict=False)
        assert (legacy(h, mask) - ours).abs().max() > 1e-2
    assert model.markers.shape == (4, 32) and PRESETS["omnivideo_v1"]["vision_heads"] == 8
    # the context: [<ipl_st>, connector tokens, <ipl_ed>, <prp_st>, UMT5 tokens, <prp_ed>], zero-padded
    m = torch.arange(4.0)[:, None].expand(4, 2)
    ctx = small_context(torch.full((1, 3, 2), 9.0), [torch.full((2, 2), 7.0)], m, 12)
    assert ctx[0, :9, 0].tolist() == [0, 9, 9, 9, 1, 2, 7, 7, 3] and ctx[0, 9:].abs().sum() == 0
    with pytest.raises(ValueError, match="2 .* or 4"):
        small_context(torch.zeros(1, 3, 2), [torch.zeros(2, 2)], torch.zeros(3, 2), 12)


def test_connector_options_are_checked():
    with pytest.raises(ValueError, match="model.connector.ffn_activation='swish'"):
        ConnectorConfig(ffn_activation="swish")
    with pytest.raises(ValueError, match="vision_heads=7 must divide its width 1152"):
        ConnectorConfig(vision_heads=7)
    # an export written before the options reads as nexus's first architecture
    assert ConnectorConfig(**{k: v for k, v in ConnectorConfig().to_dict().items()
                              if k not in ("mlp_activation", "ffn_activation", "markers")}).markers == "shared"


# ---- converting the bundle ----------------------------------------------------------------------------------------
def test_the_bundle_converts_in_the_reference_load_order(bundle, export):
    model_pt = torch.load(f"{bundle}/{FILES['transformer']}", weights_only=True)["module"]
    adapter = torch.load(f"{bundle}/{FILES['adapter']}", weights_only=True)["model_state_dict"]
    tokens = read_pickle(bundle / FILES["special_tokens"]) if hasattr(bundle, "joinpath") else \
        read_pickle(__import__("pathlib").Path(bundle) / FILES["special_tokens"])
    conn = load_file(f"{export}/connector/model.safetensors")
    # transformer/model.pt is loaded last: its adapter.* / ar_vision_head.* win over adapter/ and vision_head/
    assert torch.equal(conn["adapter_queries"], model_pt["adapter.decoder_query"][0])
    assert not torch.equal(conn["adapter_queries"], adapter["module.decoder_query"][0])
    assert torch.equal(conn["vision_in.0.weight"], model_pt["ar_vision_head.fc.0.weight"])
    assert torch.equal(conn["adapter.decoder.norm.weight"], model_pt["adapter.adapter.decoder.norm.weight"])
    assert torch.equal(conn["markers"], torch.stack([tokens[k][0].float() for k in
                                                     ("<ipl_st>", "<ipl_ed>", "<prp_st>", "<prp_ed>")]))
    # the 1.3B: wan_model.* renamed key by key (original -> diffusers, written out here)
    tr = load_file(f"{export}/transformer/diffusion_pytorch_model.safetensors")
    for orig, new in (("blocks.0.self_attn.q.weight", "blocks.0.attn1.to_q.weight"),
                      ("blocks.1.cross_attn.o.bias", "blocks.1.attn2.to_out.0.bias"),
                      ("blocks.0.norm3.weight", "blocks.0.norm2.weight"), ("head.modulation", "scale_shift_table"),
                      ("blocks.1.modulation", "blocks.1.scale_shift_table"), ("head.head.weight", "proj_out.weight"),
                      ("text_embedding.2.weight", "condition_embedder.text_embedder.linear_2.weight"),
                      ("time_projection.1.bias", "condition_embedder.time_proj.bias"),
                      ("blocks.1.ffn.0.weight", "blocks.1.ffn.net.0.proj.weight")):
        assert torch.equal(tr[new], model_pt[f"wan_model.{orig}"]), orig
    assert len(tr) == sum(k.startswith("wan_model.") for k in model_pt)
    null = load_file(f"{export}/null.safetensors")
    ctx = read_pickle(__import__("pathlib").Path(bundle) / FILES["null"])
    assert torch.equal(null["umt5"], ctx["text_emb"][0]) and torch.equal(null["vlm"], ctx["vlm_last_hidden_states"][0].float())
    info = json.loads((export / "nexus.json").read_text())
    assert info["prompt_recipe"] == "vila_llama3" and info["context_len"] == 2560 and info["connector"] == "omnivideo_v1"
    assert info["keys"]["transformer/model.pt"] == {"wan_model": len(tr), "adapter": 129, "ar_vision_head": 129,
                                                    "visual_context_adapter": 3}
    for rel in (FILES["adapter"], FILES["transformer"], FILES["null"], "wan/wanxiang1_3b/Wan2.1_VAE.pth"):
        data = (__import__("pathlib").Path(bundle) / rel).read_bytes()
        assert info["files"][rel] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert info["wan_path"].endswith("wan/wanxiang1_3b") and info["vlm_path"].endswith("ar_model/checkpoint/llm")
    assert json.loads((export / "connector" / "config.json").read_text())["markers"] == "per_block"


def test_an_incomplete_bundle_is_refused_with_the_list(bundle, tmp_path):
    broken = copy_bundle(bundle, tmp_path)
    shutil.rmtree(broken / "special_tokens")
    (broken / FILES["adapter"]).unlink()
    with pytest.raises(BundleError, match=r"missing adapter/model\.pt, special_tokens/tokens\.pkl; download .*"
                                          r"howellyoung1/OmniVideo11B"):
        check_bundle(broken)
    with pytest.raises(BundleError, match="no such folder"):
        check_bundle(tmp_path / "nowhere")


def _edit(path, fn, wrapper=None):
    d = torch.load(path, weights_only=True)
    inner = d[wrapper] if wrapper else d
    fn(inner)
    torch.save(d, path)


@pytest.mark.parametrize("case, edit, message", [
    ("renamed", lambda sd: sd.__setitem__("wan_model.blocks.0.self_attn.qq.weight",
                                           sd.pop("wan_model.blocks.0.self_attn.q.weight")),
     r"transformer/model\.pt: unexpected key wan_model\.blocks\.0\.self_attn\.qq\.weight"),
    ("reshaped", lambda sd: sd.__setitem__("wan_model.head.head.bias", torch.zeros(3)),
     r"transformer/model\.pt: key wan_model\.head\.head\.bias has shape \(3,\)"),
    ("prefix", lambda sd: sd.__setitem__("wan2_model.x", torch.zeros(1)),
     r"transformer/model\.pt: unexpected keys \['wan2_model\.x'\].*strict=False"),
    ("adapter_extra", lambda sd: sd.__setitem__("adapter.extra", torch.zeros(1)),
     r"adapter/vision-head keys the separate files do not have: \['extra'\]"),
])
def test_a_wrong_key_in_model_pt_is_refused(bundle, tmp_path, case, edit, message):
    broken = copy_bundle(bundle, tmp_path)
    _edit(broken / FILES["transformer"], edit, "module")
    with pytest.raises(ValueError, match=message):
        convert_bundle(broken, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out-*"))     # nothing half-written


@pytest.mark.parametrize("what, edit, message", [
    ("adapter dropped", lambda b: _edit(b / FILES["adapter"], lambda sd: sd.pop("module.fc.2.bias"), "model_state_dict"),
     r"missing adapter_in\.2\.bias"),
    ("vision head reshaped", lambda b: _edit(b / FILES["vision_head"], lambda sd: sd.__setitem__(
        "visionHeadAdapter.encoder.norm.weight", torch.zeros(5))), r"misshapen vision\.encoder\.norm\.weight \(5,\)"),
    ("no model_state_dict", lambda b: torch.save({"state": {}}, b / FILES["adapter"]), "no 'model_state_dict' entry"),
    ("marker missing", lambda b: pickle.dump({"<ipl_st>": torch.zeros(1, 32)}, open(b / FILES["special_tokens"], "wb")),
     r"tokens\.pkl: needs the entries \['<ipl_st>', '<ipl_ed>', '<prp_st>', '<prp_ed>'\]"),
    ("null key missing", lambda b: pickle.dump({"text_emb": [torch.zeros(2, 32)]}, open(b / FILES["null"], "wb")),
     r"context\.pkl: needs the entries \['text_emb', 'vlm_last_hidden_states', 'text_emb_siglip2'\]"),
    ("code in a pickle", lambda b: (b / FILES["null"]).write_bytes(pickle.dumps(print)),
     r"context\.pkl: holds a builtins\.print object"),
    ("truncated", lambda b: (b / FILES["vision_head"]).write_bytes(b"\x80\x02"), "cannot be read as a torch checkpoint"),
])
def test_a_broken_file_is_refused_naming_it(bundle, tmp_path, what, edit, message):
    broken = copy_bundle(bundle, tmp_path)
    edit(broken)
    with pytest.raises(ValueError, match=message):
        convert_bundle(broken, tmp_path / "out", progress=False)


# ---- writing back -------------------------------------------------------------------------------------------------
def _tensors(folder):
    return {f"{p.relative_to(folder)}:{k}": v for p in sorted(folder.rglob("*.safetensors")) for k, v in load_file(str(p)).items()}


def test_write_back_then_convert_is_bit_exact(bundle, export, tmp_path):
    back = write_bundle(export, tmp_path / "release")
    again = convert_bundle(back, tmp_path / "again", progress=False)
    a, b = _tensors(export), _tensors(again)
    assert a.keys() == b.keys() and len(a) > 300
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    # the release layout as the reference reads it
    ad = torch.load(back / FILES["adapter"], weights_only=True)
    assert ad["step"] == 1000 and set(ad["model_state_dict"]) >= {"decoder_query", "fc.0.weight", "adapter.decoder.norm.bias"}
    model_pt = torch.load(back / FILES["transformer"], weights_only=True)["module"]
    orig = torch.load(f"{bundle}/{FILES['transformer']}", weights_only=True)["module"]
    assert model_pt.keys() == orig.keys() and all(torch.equal(model_pt[k], orig[k]) for k in orig)
    assert (back / "wan/wanxiang1_3b/Wan2.1_VAE.pth").read_bytes() == \
        (__import__("pathlib").Path(bundle) / "wan/wanxiang1_3b/Wan2.1_VAE.pth").read_bytes()
    assert "ar_model/checkpoint/" in (back / "NEXT_STEPS.txt").read_text()
    with pytest.raises(FileExistsError, match="exists: pass --overwrite"):
        write_bundle(export, back)


def test_write_back_refuses_a_connector_the_reference_would_run_differently(tmp_path, export):
    other = tmp_path / "legacy"
    shutil.copytree(export, other)
    cfg = json.loads((other / "connector" / "config.json").read_text())
    (other / "connector" / "config.json").write_text(json.dumps({**cfg, "vision_heads": 4, "ffn_activation": "gelu"}))
    with pytest.raises(ValueError, match=r"vision_heads=4 \(the reference builds 8\); ffn_activation=gelu"):
        write_bundle(other, tmp_path / "out")


# ---- through the tools --------------------------------------------------------------------------------------------
SMALL = ["sampling.num_frames=9", "sampling.height=32", "sampling.width=32", "sampling.num_steps=3",
         "sampling.dtype=fp32", "trainer.accelerator=cpu", "sampling.progress=false"]


def test_the_release_samples_through_tools_sample(bundle, export, tmp_path):
    from nexus.data.video import decode_mp4
    out = tmp_path / "samples"
    cmd = [sys.executable, "tools/sample.py", "recipe=lumos_nexus_release", f"small.export={export}",
           f"paths.large={bundle}/Wan2.1-T2V-14B", "prompt=A red ball bounces.", f"out_dir={out}", *SMALL]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    videos = list(out.glob("*.mp4"))
    assert len(videos) == 1 and decode_mp4(videos[0].read_bytes()).shape == (9, 32, 32, 3)
    record = json.loads((out / "samples.json").read_text())
    s = record["settings"]["sampling"]
    assert (s["scheduler"], s["noise"], s["video"], s["seed"]) == ("unipc_reference", "reference", "reference", 42)
    # paths.small / paths.vlm came from the export's nexus.json (the bundle's own folders)
    assert record["weights"]["small"]["path"].endswith("wan/wanxiang1_3b")
    assert record["weights"]["vlm"]["path"].endswith("ar_model/checkpoint/llm")


def test_the_release_null_conditions_and_prompt_recipe_reach_the_sampler(bundle, export):
    from nexus.inference.module import BridgeModule
    info = json.loads((export / "nexus.json").read_text())
    m = BridgeModule(info["wan_path"], f"{bundle}/Wan2.1-T2V-14B", "/tmp/unused", export=str(export),
                     vlm_path=info["vlm_path"], num_frames=9, height=32, width=32, num_steps=2, dtype="fp32")
    m.configure_model()
    assert m.pipe.config.prompt_recipe == "vila_llama3" and m.pipe.vlm.dtype == torch.float16
    cs, cs0, cl, cl0 = m.pipe.encode_prompt(["a cat"])
    null = load_file(f"{export}/null.safetensors")
    t = null["umt5"].shape[0]
    assert torch.equal(cl0[0, :t], null["umt5"]) and cl0[0, t:].abs().sum() == 0    # the file, not the empty prompt
    with torch.no_grad():
        q = m.connector(null["vlm"][None].float())
    conn = load_file(f"{export}/connector/model.safetensors")
    assert torch.allclose(cs0[0, 1:1 + q.shape[1]], q[0], atol=1e-4) and torch.equal(cs0[0, 0], conn["markers"][0])
    assert torch.equal(cs0[0, q.shape[1] + 2], conn["markers"][2])       # <prp_st> before the T5 tokens


def test_the_converted_release_is_a_pipeline_folder(bundle, export):
    """LumosNexusPipeline.from_pretrained(<converted release>) samples as the release did: the reference UniPC
    schedule, VILA's prompts in fp16, the null conditions of context.pkl, the bundle's Wan2.1-T2V-14B."""
    from nexus.pipelines import LumosNexusPipeline
    from nexus.upfb.solver import ReferenceUniPC
    index = json.loads((export / "model_index.json").read_text())
    assert index["_nexus_sources"]["small"] == "."
    assert index["_nexus_sources"]["large"] == str((Path(bundle) / "Wan2.1-T2V-14B").resolve())
    pipe = LumosNexusPipeline.from_pretrained(export, torch_dtype=torch.float32)
    assert type(pipe.scheduler) is ReferenceUniPC and pipe.scheduler.config.flow_shift == 5.0
    assert (pipe.config.prompt_recipe, pipe.config.context_len, pipe.vlm.dtype) == ("vila_llama3", 2560,
                                                                                     torch.float16)
    null = load_file(f"{export}/null.safetensors")
    _, cs0, _, cl0 = pipe.encode_prompt(["a cat"])
    t = null["umt5"].shape[0]
    assert torch.equal(cl0[0, :t], null["umt5"]) and cl0[0, t:].abs().sum() == 0    # the file, not the empty prompt
    video = pipe("a cat", num_frames=9, height=32, width=32, num_inference_steps=2,
                 generator=torch.Generator().manual_seed(42)).frames
    assert video.shape == (1, 9, 32, 32, 3) and video.std() > 0


def test_training_continues_from_the_release_and_writes_it_back(bundle, export, tmp_path):
    run = [sys.executable, "tools/fit.py", "recipe=lumos_release_stage1", f"model.init_from={export}",
           "data.shards=data/tiny/clips/shard-*.tar", "data.num_frames=9", "data.height=32", "data.width=32",
           "data.batch_size=2", "data.num_workers=0", "strategy=auto", "trainer.accelerator=cpu", "trainer.devices=1",
           "trainer.precision=32-true", "trainer.max_steps=2", "model.vlm_dtype=fp32", "model.encoder_dtype=fp32",
           "model.gradient_checkpointing=false", "logger=none", f"run.root={tmp_path}/runs", "plan.gpu=off",
           "checkpoint.every_n_steps=2"]
    r = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = tmp_path / "runs/lumos_release_stage1/default/checkpoints/last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    start = load_file(f"{export}/connector/model.safetensors")
    moved = (state["connector.adapter_queries"] - start["adapter_queries"]).abs().max()
    assert 0 < moved < 0.1       # started from the release's weights, and trained
    out = tmp_path / "release-out"
    r = subprocess.run([sys.executable, "tools/export.py", str(ckpt), str(out), "--format", "omnivideo",
                        "--dtype", "fp32"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ad = torch.load(out / FILES["adapter"], weights_only=True)["model_state_dict"]
    assert torch.equal(ad["decoder_query"][0], state["connector.adapter_queries"])
    model_pt = torch.load(out / FILES["transformer"], weights_only=True)["module"]
    assert torch.equal(model_pt["wan_model.blocks.0.self_attn.q.weight"], state["transformer.blocks.0.attn1.to_q.weight"])
    assert "visual_context_adapter.proj.weight" in model_pt      # carried from the release, untouched by T2V training
    # a model.init_from with another architecture is refused before anything loads
    r = subprocess.run(run[:3] + ["connector=nexus_v0"] + run[3:], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "model.connector.vision_heads: 16 (export: 8)" in r.stderr, r.stderr[-2000:]


@pytest.mark.gpu
def test_real_size_random_bundle_converts_and_runs_on_cuda(bundle, tmp_path):
    """The real architectures (Wan2.1-T2V-1.3B, the full connector of VILA's 4096-d LLM) with random weights, written
    in the release's layout and converted: sizes, dtypes and the strict checks at real scale, then a forward."""
    from diffusers import WanTransformer3DModel
    from nexus.convert import wan
    from nexus.models.presets import WAN_T2V_1_3B
    root = copy_bundle(bundle, tmp_path)
    torch.manual_seed(0)
    with torch.device("cuda"):
        gen = WanTransformer3DModel(**WAN_T2V_1_3B).to(torch.bfloat16)
        conn = OmniConnector(ConnectorConfig(**PRESETS["omnivideo_v1"])).to(torch.bfloat16)
    shutil.rmtree(root / FILES["wan"] / "diffusion_pytorch_model.safetensors", ignore_errors=True)
    (root / FILES["wan"] / "diffusion_pytorch_model.safetensors").unlink(missing_ok=True)
    stock = wan.save_original_transformer(gen.cpu(), None, root / FILES["wan"])
    vh, ad = _connector_to_release({k: v.cpu() for k, v in conn.state_dict().items()})
    torch.save({"model_state_dict": ad}, root / FILES["adapter"])
    torch.save(vh, root / FILES["vision_head"])
    torch.save({"module": {f"wan_model.{k}": v for k, v in list(stock.items())[:10]}}, root / FILES["transformer"])
    pickle.dump({k: torch.randn(1, 4096) for k in ("<ipl_st>", "<ipl_ed>", "<prp_st>", "<prp_ed>")},
                open(root / FILES["special_tokens"], "wb"))
    pickle.dump({"text_emb": [torch.randn(12, 4096)], "vlm_last_hidden_states": torch.randn(1, 164, 4096),
                 "text_emb_siglip2": [torch.zeros(1, 1152)]}, open(root / FILES["null"], "wb"))
    out = convert_bundle(root, tmp_path / "export", progress=False, hash_files=False)
    from nexus.export import load_connector
    c = load_connector(out / "connector", device="cuda", dtype=torch.bfloat16)
    t = WanTransformer3DModel.from_pretrained(out / "transformer", torch_dtype=torch.bfloat16).cuda()
    with torch.no_grad():
        q = c(torch.randn(1, 164, 4096, device="cuda", dtype=torch.bfloat16))
        ctx = small_context(q, [torch.randn(20, 4096, device="cuda", dtype=torch.bfloat16)], c.markers, 2560)
        v = t(torch.randn(1, 16, 5, 30, 52, device="cuda", dtype=torch.bfloat16), torch.tensor([500.0], device="cuda"),
              ctx, return_dict=False)[0]
    assert q.shape == (1, 1024, 4096) and v.shape == (1, 16, 5, 30, 52) and torch.isfinite(v).all()
