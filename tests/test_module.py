"""AlignmentModule on tiny real parts: forward/backward, which parameters train, CFG dropout, LoRA."""
import pytest
import torch

from nexus.training.module import AlignmentModule

CONNECTOR = dict(vlm_dim=64, vision_dim=32, vision_layers=1, vision_heads=2, vision_ffn=64, vision_queries=2,
                 out_dim=32, adapter_layers=1, adapter_heads=2, adapter_ffn=64, adapter_queries=8)


def make(tiny_models, **kw):
    m = AlignmentModule(tiny_models["wan"], tiny_models["vlm"], connector=CONNECTOR, context_len=540, **kw)
    m.setup("fit")
    m.configure_model()
    m.on_fit_start()
    return m


def raw_batch(b=2):
    g = torch.Generator().manual_seed(0)
    return {"video": torch.rand(b, 3, 9, 32, 32, generator=g) * 2 - 1, "caption": ["a red square moves", "a blue circle"][:b],
            "key": [str(i) for i in range(b)]}


def test_forward_backward_trains_connector_and_generator_only(tiny_models):
    torch.manual_seed(0)
    m = make(tiny_models)
    loss = m.compute_loss(raw_batch())
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert all(p.grad is not None for p in m.connector.parameters())
    assert m.transformer.proj_out.weight.grad is not None
    # the frozen encoders are not submodules: not in the state dict, no gradients
    assert not any(k.startswith(("encoders", "vae", "vlm", "umt5")) for k in m.state_dict())
    assert all(not p.requires_grad for p in m.encoders.vlm.parameters())
    assert all(p.grad is None for p in m.encoders.vae.parameters())
    names = {n.split(".")[0] for n, _ in m.named_parameters()}
    assert names == {"transformer", "connector"}


def test_loss_is_deterministic_per_step_and_depends_on_it(tiny_models):
    m = make(tiny_models)
    with torch.no_grad():
        a, b = m.compute_loss(raw_batch()), m.compute_loss(raw_batch())
    assert a.item() == b.item()       # same (seed, step, rank) -> same noise, timesteps and dropout


def test_cfg_dropout_uses_null_condition(tiny_models):
    m = make(tiny_models, cfg_dropout=0.999)
    seen = {}
    orig = m.connector.forward

    def spy(hidden, mask, video=True):
        seen["hidden"] = hidden
        return orig(hidden, mask, video)
    m.connector.forward = spy
    with torch.no_grad():
        m.compute_loss(raw_batch())
    null = m._null["vlm"]
    assert seen["hidden"].shape[1] == null.shape[0]
    assert torch.allclose(seen["hidden"][0, : null.shape[0]], null) and torch.allclose(seen["hidden"][1], null)


def test_lora_trains_only_adapters(tiny_models):
    m = make(tiny_models, generator_train="lora", lora={"r": 4, "lora_alpha": 4})
    trainable = [n for n, p in m.transformer.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    groups = m.trainable_parameters()
    assert sum(p.numel() for g in groups for p in g["params"]) == \
        sum(p.numel() for p in m.connector.parameters()) + sum(p.numel() for n, p in m.transformer.named_parameters() if "lora" in n)


def test_bad_options():
    with pytest.raises(ValueError, match="generator_train='half'"):
        AlignmentModule("x", generator_train="half")
    with pytest.raises(ValueError, match="cfg_dropout"):
        AlignmentModule("x", cfg_dropout=1.5)


def test_plain_generator_mode_trains_the_generator_on_wans_context(tiny_models):
    """conditioning=umt5: no connector, no VLM; the generator reads UMT5 tokens zero-padded to model.text_len (Wan:
    512), exactly the context the sampler gives a stock Wan (nexus.inference.module.BridgeModule.contexts)."""
    m = AlignmentModule(tiny_models["wan"], None, conditioning="umt5", context_len=512, cfg_dropout=0.0, text_len=40)
    m.setup("fit")
    m.on_fit_start()
    assert m.connector is None and m.encoders.vlm is None
    assert {n.split(".")[0] for n, _ in m.named_parameters()} == {"transformer"}
    seen = []
    hook = m.transformer.register_forward_hook(lambda mod, args, kw, out: seen.append(kw.get("encoder_hidden_states",
                                                                                          args[2] if len(args) > 2 else None)),
                                               with_kwargs=True)
    batch = raw_batch()
    loss = m.compute_loss(batch)
    hook.remove()
    loss.backward()
    assert m.transformer.proj_out.weight.grad is not None
    umt5 = m.encoders.prompts(batch["caption"])["umt5"]
    (context,) = seen
    assert context.shape == (2, 40, umt5[0].shape[-1])      # model.text_len
    for row, u in zip(context, umt5):       # the prompt's tokens, then zeros
        assert torch.equal(row[: len(u)], u) and not row[len(u):].any()
    assert [g["name"] for g in m.trainable_parameters()] == ["generator"]
    m.hparams.text_len = 3        # a prompt longer than the context: named, not cut
    with pytest.raises(ValueError, match=r"a prompt has \d+ UMT5 tokens, more than text_len=3: raise model.text_len"):
        m.compute_loss(batch)
    with pytest.raises(ValueError, match="conditioning=umt5 trains no connector, so model.generator_train=frozen"):
        AlignmentModule(tiny_models["wan"], None, conditioning="umt5", generator_train="frozen")
    with pytest.raises(ValueError, match="model.conditioning='vlm': choose one of"):
        AlignmentModule(tiny_models["wan"], None, conditioning="vlm")


def test_umt5_dropout_replaces_only_the_umt5_half(tiny_models, monkeypatch):
    """model.umt5_dropout: the UMT5 tokens become the empty prompt's while the connector still reads the prompt's
    VLM states; at 0 (the default) the context is the prompt's in both halves."""
    import nexus.training.module as module
    seen = {}
    real_context = module.small_context

    def spy(tokens, umt5, markers, context_len):
        seen["umt5"] = umt5
        return real_context(tokens, umt5, markers, context_len)
    monkeypatch.setattr(module, "small_context", spy)
    batch = raw_batch()
    for p, dropped in ((0.999, True), (0.0, False)):
        m = make(tiny_models, cfg_dropout=0.0, umt5_dropout=p)
        hidden = {}
        m.connector.register_forward_hook(lambda mod, args, out: hidden.update(states=args[0]))
        with torch.no_grad():
            m.compute_loss(batch)
        prompt = m.encoders.prompts(batch["caption"])
        null = m._null["umt5"]
        for u, real in zip(seen["umt5"], prompt["umt5"]):
            assert torch.equal(u, null if dropped else real)
        vlm = prompt["vlm"][0]
        assert torch.allclose(hidden["states"][0, : vlm.shape[0]], vlm)      # the connector reads the prompt
    with pytest.raises(ValueError, match="model.umt5_dropout=1.0 must lie in"):
        AlignmentModule("x", umt5_dropout=1.0)
    with pytest.raises(ValueError, match="with model.conditioning=umt5 use model.cfg_dropout"):
        AlignmentModule("x", conditioning="umt5", umt5_dropout=0.5)
