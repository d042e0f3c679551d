"""What DeepSpeed's bf16 training does to Wan's fp32 modules, measured: DeepSpeed 0.19 casts every parameter
to bf16 (its data_types.keep_in_fp32_modules keeps buffers only), so the time embedder, scale_shift_table and
the norms train in bf16, while from_pretrained(torch_dtype=bf16) keeps them fp32 for inference. On the real
1.3B width (random weights) the two layouts sit equally close to fp32 (docs/training.md, "Precision layout")."""
import torch
from diffusers import WanTransformer3DModel

from nexus.models.loading import cast_like_pretrained
from nexus.models.presets import WAN_T2V_1_3B


def test_deepspeed_bf16_layout_is_as_close_to_fp32_as_the_inference_layout():
    torch.manual_seed(0)
    cfg = dict(WAN_T2V_1_3B, num_layers=1)
    ref = WanTransformer3DModel.from_config(cfg).eval()
    inference = cast_like_pretrained(WanTransformer3DModel.from_config(cfg), torch.bfloat16).eval()
    inference.load_state_dict(ref.state_dict())
    deepspeed = WanTransformer3DModel.from_config(cfg).eval()
    deepspeed.load_state_dict(ref.state_dict())
    for p in deepspeed.parameters():        # what the engine's _cast_module_mixed_precision does; buffers stay
        p.data = p.data.bfloat16()
    assert inference.scale_shift_table.dtype == torch.float32 and deepspeed.scale_shift_table.dtype == torch.bfloat16
    g = torch.Generator().manual_seed(1)
    z, c = torch.randn(1, 16, 2, 16, 16, generator=g), torch.randn(1, 64, 4096, generator=g)
    for t in (999.0, 20.0):
        with torch.no_grad():
            r = ref(z, torch.tensor([t]), c, return_dict=False)[0]
            errors = [(m(z.bfloat16(), torch.tensor([t]), c.bfloat16(), return_dict=False)[0].float() - r).norm()
                      / r.norm() for m in (inference, deepspeed)]
        assert errors[0] < 0.01 and errors[1] < 0.01
        assert errors[1] < 1.25 * errors[0], errors       # within a quarter of the inference layout's own error
