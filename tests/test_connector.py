import pytest
import torch

from nexus.models.conditioning import pad_tokens, required_context_len, small_context
from nexus.models.connector import ConnectorConfig, OmniConnector
from nexus.shapes import check_clip_shape, latent_tokens

TINY = dict(vlm_dim=24, vision_dim=16, vision_layers=1, vision_heads=2, vision_ffn=32, vision_queries=3,
            out_dim=8, adapter_layers=1, adapter_heads=2, adapter_ffn=16, adapter_queries=5)


def test_full_size_connector_shapes_and_size():
    c = ConnectorConfig()
    assert (c.vision_queries, c.adapter_queries, c.num_tokens, c.vision_dim, c.out_dim) == (4, 256, 1024, 1152, 4096)
    with torch.device("meta"):
        m = OmniConnector(c)
    assert len(m.vision.encoder.layers) == len(m.vision.decoder.layers) == 4
    assert len(m.adapter.encoder.layers) == len(m.adapter.decoder.layers) == 4
    assert m.adapter.encoder.layers[0].linear1.out_features == 16384
    assert m.vision.encoder.layers[0].norm_first


def test_connector_tokens_and_padding_mask():
    torch.manual_seed(0)
    m = OmniConnector(ConnectorConfig(**TINY)).eval()
    h = torch.randn(2, 6, 24)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    out = m(h, mask)
    assert out.shape == (2, 15, 8)
    # padding must not leak: changing padded positions leaves sample 1 unchanged
    h2 = h.clone()
    h2[1, 4:] = 100.0
    assert torch.allclose(m(h2, mask)[1], out[1], atol=1e-5)
    # and equals running sample 1 alone without its padding
    assert torch.allclose(m(h[1:2, :4])[0], out[1], atol=1e-5)
    # single image: the first vision-head token only
    img = m(h, mask, video=False)
    assert img.shape == (2, 5, 8) and torch.allclose(img, out[:, :5], atol=1e-5)
    with pytest.raises(ValueError, match="connector.vlm_dim"):
        m(torch.randn(1, 3, 7))


def test_small_context_layout():
    q = torch.arange(2 * 3 * 2, dtype=torch.float).view(2, 3, 2) + 10
    umt5 = [torch.full((2, 2), 1.0), torch.full((1, 2), 2.0)]
    markers = torch.tensor([[-1.0, -1.0], [-2.0, -2.0]])
    ctx = small_context(q, umt5, markers, context_len=12)
    assert ctx.shape == (2, 12, 2)
    s, e = [-1.0, -1.0], [-2.0, -2.0]
    expect0 = [s, *q[0].tolist(), e, s, [1.0, 1.0], [1.0, 1.0], e] + [[0.0, 0.0]] * 3
    assert ctx[0].tolist() == expect0
    assert ctx[1, 8:].abs().sum() == 0 and ctx[1, 6].tolist() == [2.0, 2.0] and ctx[1, 7].tolist() == e
    with pytest.raises(ValueError, match="context_len"):
        small_context(q, umt5, markers, context_len=8)
    assert required_context_len(1024) == 1540
    padded, m = pad_tokens(umt5)
    assert padded.shape == (2, 2, 2) and m.tolist() == [[True, True], [True, False]]


def test_clip_shape_checks():
    check_clip_shape(81, 480, 832)
    assert latent_tokens(81, 480, 832) == 32760
    with pytest.raises(ValueError, match=r"num_frames=80 is not 4k\+1.*use 77 or 81"):
        check_clip_shape(80, 480, 832)
    with pytest.raises(ValueError, match="width=830 is not a multiple of 16.*use 816 or 832"):
        check_clip_shape(81, 480, 830)


def test_gradient_checkpointing_gives_the_same_values_and_grads():
    torch.manual_seed(0)
    m = OmniConnector(ConnectorConfig(**TINY)).train()
    h, mask = torch.randn(2, 6, 24), torch.ones(2, 6, dtype=torch.bool)
    mask[0, 5:] = False
    out = m(h, mask)
    out.square().sum().backward()
    params = [p for n, p in m.named_parameters() if n != "markers"]     # markers are used by the context, not here
    grads = [p.grad.clone() for p in params]
    m.zero_grad()
    m.gradient_checkpointing = True
    out2 = m(h, mask)
    out2.square().sum().backward()
    assert torch.allclose(out, out2, atol=1e-6)
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(grads, params))
