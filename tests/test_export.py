"""tools/export.py: trainable weights out of plain and ZeRO-sharded checkpoints, loadable by diffusers."""
import json
from pathlib import Path

import pytest
import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import load_file

from helpers import compose_fit, tiny_overrides
from nexus.export import export_checkpoint, load_connector
from nexus.training.launch import fit


def train(tmp_path, tiny_models, shards, *extra):
    cfg = compose_fit(*tiny_overrides(tmp_path, tiny_models, shards, "trainer.max_steps=2", *extra))
    fit(cfg)
    return Path(cfg.run.dir) / "checkpoints" / "last.ckpt"


def test_export_full_round_trips(tmp_path, tiny_models, tiny_shards):
    ckpt = train(tmp_path, tiny_models, tiny_shards)
    sd = torch.load(ckpt, weights_only=False)["state_dict"]
    out = export_checkpoint(ckpt, tmp_path / "export", dtype="fp32")
    info = json.loads((out / "nexus.json").read_text())
    assert info["global_step"] == 2 and info["context_len"] == 540      # the tiny recipe's model.context_len
    conn = load_connector(out / "connector")
    for k, v in conn.state_dict().items():
        assert torch.equal(v, sd[f"connector.{k}"]), k
    tr = WanTransformer3DModel.from_pretrained(out / "transformer")
    for k, v in tr.state_dict().items():
        assert torch.equal(v, sd[f"transformer.{k}"]), k
    stock = WanTransformer3DModel.from_pretrained(Path(tiny_models["wan"]) / "transformer")
    assert not torch.equal(stock.proj_out.weight, tr.proj_out.weight)      # it did train
    # bf16 export: same values, rounded
    out16 = export_checkpoint(ckpt, tmp_path / "export16")
    w = load_file(str(out16 / "connector" / "model.safetensors"))["markers"]
    assert w.dtype == torch.bfloat16 and torch.equal(w, sd["connector.markers"].to(torch.bfloat16))
    # nothing is overwritten silently; a wrong path says what to pass
    with pytest.raises(FileExistsError, match="exists: pass overwrite"):
        export_checkpoint(ckpt, out)
    with pytest.raises(FileNotFoundError, match="neither a checkpoint file nor a DeepSpeed checkpoint folder"):
        export_checkpoint(tmp_path / "nope.ckpt", tmp_path / "x")


def test_export_lora_loads_into_stock_generator(tmp_path, tiny_models, tiny_shards):
    ckpt = train(tmp_path, tiny_models, tiny_shards, "model.generator_train=lora", "model.lora={r:4,lora_alpha:8}",
                 "model.lr=1e-2")
    out = export_checkpoint(ckpt, tmp_path / "export", dtype="fp32")
    assert not (out / "transformer").exists()
    assert (out / "transformer_lora" / "pytorch_lora_weights.safetensors").is_file()
    sd = torch.load(ckpt, weights_only=False)["state_dict"]
    lora_b = [v for k, v in sd.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)     # the adapters trained (B starts at zero)

    tr = WanTransformer3DModel.from_pretrained(Path(tiny_models["wan"]) / "transformer")
    x, t, ctx = torch.randn(1, 16, 3, 4, 4), torch.tensor([500.0]), torch.randn(1, 7, 32)
    base = tr(x, t, ctx).sample
    tr.load_lora_adapter(out / "transformer_lora", prefix="transformer", adapter_name="nexus", use_safetensors=True)
    got = tr(x, t, ctx).sample
    # independent reference: W + (alpha / r) * B @ A on one adapted projection
    name = "blocks.0.attn1.to_q"
    a, b = sd[f"transformer.{name}.lora_A.default.weight"], sd[f"transformer.{name}.lora_B.default.weight"]
    lin = tr.get_submodule(name)
    merged = lin.base_layer.weight + 2.0 * b @ a
    probe = torch.randn(3, lin.in_features)
    assert torch.allclose(lin(probe), probe @ merged.T + lin.base_layer.bias, atol=1e-5)
    assert not torch.allclose(got, base)


def test_plain_generator_training_exports_a_whole_wan_folder(tmp_path, tiny_models, tiny_shards):
    """model.conditioning=umt5 (recipe wan13b_t2v): the generator alone on Wan's own context; its export is a Wan
    folder that tools/sample.py reads as paths.small (the stock-generator path: UMT5 context, no connector)."""
    from nexus.inference.launch import sample
    from test_sample import base, compose_sample
    ckpt = train(tmp_path, tiny_models, tiny_shards, "model.conditioning=umt5", "paths.vlm=null", "model.text_len=64")
    state = torch.load(ckpt, weights_only=False)
    assert {k.split(".")[0] for k in state["state_dict"]} == {"transformer"}
    assert state["nexus"]["conditioning"] == "umt5" and state["nexus"]["connector_config"] is None
    out = export_checkpoint(ckpt, tmp_path / "wan_trained", dtype="fp32")
    src = Path(tiny_models["wan"])
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in src.iterdir()] + ["nexus.json"])
    for part in ("vae", "text_encoder", "tokenizer"):      # copied byte for byte from the folder it trained from
        for f in (src / part).iterdir():
            assert (out / part / f.name).read_bytes() == f.read_bytes(), f
    tr = WanTransformer3DModel.from_pretrained(out / "transformer")
    for k, v in tr.state_dict().items():
        assert torch.equal(v, state["state_dict"][f"transformer.{k}"]), k
    info = json.loads((out / "nexus.json").read_text())
    assert info["conditioning"] == "umt5" and info["text_len"] == 64
    args = base(tmp_path, tiny_models, "prompt=a red square", f"paths.small={out}", "bridge.strategy=small_only",
                "paths.vlm=null")
    with pytest.raises(ValueError, match=f"paths.small={out} was trained with text_len=64 .* sampling.text_len=64"):
        sample(compose_sample(*args))     # Wan does not mask padding: the length it trained with is part of it
    (video,) = sample(compose_sample(*args, "sampling.text_len=64"))
    assert Path(video).is_file()
