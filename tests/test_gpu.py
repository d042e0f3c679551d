"""CUDA-only checks (skipped on CPU machines such as CI): the bf16 training step on a GPU."""
import pytest
import torch

from test_module import make, raw_batch


@pytest.mark.gpu
def test_bf16_autocast_step_on_cuda(tiny_models):
    m = make(tiny_models).cuda()
    m.encoders.to("cuda")
    m.on_fit_start()
    batch = {k: (v.cuda() if torch.is_tensor(v) else v) for k, v in raw_batch().items()}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = m.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and m.connector.markers.grad is not None
